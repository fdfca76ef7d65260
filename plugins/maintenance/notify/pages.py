"""Paging on-call about problems a run finds, once per problem.

A daily scan that finds the same critical advisory every day must not page every day: each
problem (a key within a scope, e.g. ``security_scan`` / ``npm:lodash@4.17.20``) pages when it
is first seen, then reminds at the policy's ``notifications.page_reminder_hours`` while it
stays open; a run that no longer sees it resolves it. The ledger remembers what was paged; a
page that Slack did not take is tried again by the next run.
"""

from __future__ import annotations


def page_once(ledger, policy, *, scope: str, title: str, problems: dict[str, str], context) -> dict:
    """Page on-call about the new problems and those whose reminder is due; returns what went out."""
    from maintenance import clock
    from maintenance.notify import slack

    now = clock.now()
    keyed = {f"{scope}:{key}": message for key, message in problems.items()}
    new, due = ledger.pages_due(scope, keyed, remind_after_s=policy.notifications.page_reminder_hours * 3600,
                                now=now)
    outcome = {"open": len(keyed), "paged": sorted(new), "reminded": sorted(due), "delivered": None}
    if not new and not due:
        return outcome
    ti = context["ti"]
    lines = [f":rotating_light: *{title}*"]
    lines += [f"• NEW {message}" for message in new.values()]
    if due:
        lines.append(f"Still open (reminder every {policy.notifications.page_reminder_hours:g} h):")
        lines += [f"• {message}" for message in due.values()]
    lines.append(f"Run: <{policy.notifications.run_url(ti.dag_id, ti.run_id)}|{ti.dag_id} {ti.run_id}>")
    outcome["delivered"] = slack.post(policy.connections.slack, policy.notifications.oncall_channel, "\n".join(lines))
    if outcome["delivered"]:
        ledger.paged(scope, new | due, now)
    return outcome
