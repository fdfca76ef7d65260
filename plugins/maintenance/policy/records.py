"""The ledger, KPI targets and reports."""

from __future__ import annotations

from pydantic import Field

from maintenance.policy.base import _Strict


class LedgerSettings(_Strict):
    schema_name: str = Field("maintenance", min_length=1, max_length=63)
    spool_dir: str | None = Field(None, description="where critical tasks keep their records while the ledger "
                                                     "is down; default $AIRFLOW_HOME/maintenance-ledger-spool")


class KpiTargets(_Strict):
    """The procedures' success criteria; monthly figures are scaled to a report's period."""

    uptime_pct: float = Field(99.9, gt=0, le=100)
    planned_downtime_minutes_per_month: float = Field(240, ge=0)
    unplanned_downtime_minutes_per_month: float = Field(30, ge=0)
    mttr_minutes: float = Field(30, gt=0)


class Reports(_Strict):
    bucket: str = Field("pathfinity-maintenance", min_length=3)
    prefix: str = "reports/"
    kpi_targets: KpiTargets = KpiTargets()
