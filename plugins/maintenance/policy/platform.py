"""Connections and notifications: where the platform and its people are."""

from __future__ import annotations

from pydantic import Field

from maintenance.policy.base import _Strict


class Connections(_Strict):
    """Airflow connection ids of the systems maintained."""

    platform_postgres: str = "platform_db"
    ledger: str = "platform_db"
    redis: str = "platform_redis"
    aws: str = "platform_aws"
    slack: str = "slack_oncall"
    kubernetes: str = "kubernetes_default"


class Notifications(_Strict):
    oncall_channel: str = "#ops-oncall"
    summary_channel: str = "#ops-maintenance"
    stakeholders_channel: str = Field("#maintenance-announcements", min_length=1,
                                      description="the planned window's notice goes here (procedures 1.1)")
    base_url: str = Field("http://localhost:8080", description="Airflow UI address, for links")
    # A problem on-call was paged about pages once; while it stays open, a reminder goes out
    # at this interval, not on every run that sees it again.
    page_reminder_hours: float = Field(72, gt=0)

    def run_url(self, dag_id: str, run_id: str) -> str:
        from urllib.parse import quote

        return f"{self.base_url.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"
