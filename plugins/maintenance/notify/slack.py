"""Posting to Slack through the provider's SlackHook, never failing the maintenance.

A Slack outage must not fail or retry the work it reports on, so every post
returns whether it was delivered and logs, rather than raises, what went wrong.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def post(conn_id: str, channel: str, text: str, blocks: list[dict] | None = None) -> bool:
    from airflow.providers.slack.hooks.slack import SlackHook

    try:
        # No client-side retries: a failed post is reported once, not hammered.
        hook = SlackHook(slack_conn_id=conn_id, retry_handlers=[], timeout=10)
        hook.client.chat_postMessage(channel=channel, text=text, blocks=blocks)
        return True
    except Exception as exc:  # the slack_sdk, HTTP and connection errors alike
        log.warning("Slack post to %s on %s failed, maintenance continues: %s", channel, conn_id, exc)
        return False


def upload(conn_id: str, channel: str, filename: str, content: bytes, title: str) -> bool:
    from airflow.providers.slack.hooks.slack import SlackHook

    try:
        hook = SlackHook(slack_conn_id=conn_id, retry_handlers=[], timeout=30)
        hook.client.files_upload_v2(channel=channel, filename=filename, content=content, title=title)
        return True
    except Exception as exc:
        log.warning("Slack upload of %s to %s failed, maintenance continues: %s", filename, channel, exc)
        return False
