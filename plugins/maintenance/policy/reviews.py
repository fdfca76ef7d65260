"""The reviews: updates, documentation, costs."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from maintenance.policy.base import _Strict


class UpdateReview(_Strict):
    """The monthly update review of EC2 and RDS (procedures 2.3, 5.2), through connections.aws."""

    enabled: bool = Field(True, description="off: the review reports that it is off")
    max_ami_age_days: float = Field(90, gt=0, description="an instance's image older than this: rebuild")
    stopped_unused_days: float = Field(14, gt=0, description="an instance stopped longer looks unused")
    rds_min_engine_versions: dict[str, str] = Field({}, description="engine -> oldest version allowed")

    @field_validator("rds_min_engine_versions")
    @classmethod
    def _versions(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [f"{engine}: {version!r}" for engine, version in value.items()
               if not re.fullmatch(r"\d+(\.\d+)*", version)]
        if bad:
            raise ValueError(f"versions must be numbers separated by dots, got {', '.join(bad)}")
        return value


class DocFolder(_Strict):
    path: str = Field(min_length=1, description="a folder on the worker, e.g. a checkout of the docs repository")
    patterns: list[str] = Field(["*.md"], min_length=1)


class Documentation(_Strict):
    """Friday's documentation review (procedures 2.2, 8.1)."""

    folders: list[DocFolder] = []
    runbooks: DocFolder | None = Field(None, description="recent incidents must be mentioned in one of these")
    stale_after_days: float = Field(180, gt=0)
    incident_lookback_days: float = Field(30, gt=0)


class StudentsQuery(_Strict):
    """Distinct students per day on the platform's database: rows of (day, students), for the
    period ``%(start)s`` to ``%(end)s`` (timestamps), days counted in ``%(timezone)s``."""

    conn_id: str = Field("platform_db", min_length=1)
    sql: str = Field(
        "SELECT (created_at AT TIME ZONE %(timezone)s)::date AS day, count(DISTINCT student_id) "
        "FROM learning_sessions WHERE created_at >= %(start)s AND created_at < %(end)s GROUP BY 1", min_length=1)


class Costs(_Strict):
    """Monday's cost review (procedures 2.2, 5.2): AWS Cost Explorer against students served."""

    enabled: bool = Field(True, description="off: the review reports that it is off")
    target_per_student_per_day: float = Field(0.05, gt=0, description="the procedures' goal, in the currency")
    review_days: int = Field(7, ge=1, le=90, description="compared with the same number of days before")
    growth_warning_fraction: float = Field(0.2, gt=0, description="a rise over the previous period above this")
    metric: Literal["UnblendedCost", "BlendedCost", "AmortizedCost", "NetUnblendedCost", "NetAmortizedCost"] = (
        "UnblendedCost")
    top_services: int = Field(10, ge=1)
    students: StudentsQuery = StudentsQuery()


class RdsMaintenance(_Strict):
    """RDS maintenance governed by the calendar (maintenance.aws.rds_windows), through
    connections.aws: instances' weekly windows that fall in a blackout are moved to the planned
    window's slot; pending maintenance actions are opted in only in the planned window."""

    enabled: bool = Field(False, description="off: maintenance_rds reports that it is off")
    look_ahead_weeks: int = Field(8, ge=1, le=52, description="how many weekly occurrences are checked")
    max_changes_per_run: int = Field(10, ge=1, description="windows moved, or actions opted in, per run at most")
