"""Backups: pg_dump, verification, restore tests and the DR drill."""

from __future__ import annotations

from pydantic import Field

from maintenance.policy.base import _Strict


class SmokeQuery(_Strict):
    """A query the disaster-recovery drill runs on the restored copy: one row, first column a number."""

    name: str = Field(min_length=1)
    sql: str = Field(min_length=1)
    at_least: float = Field(0, description="the drill fails when the number is below this")


class Backups(_Strict):
    """PostgreSQL backups (procedures 2.1 verification, 2.2 restore test and DR drill)."""

    bucket: str = Field("pathfinity-backups", min_length=3)
    prefix: str = Field("postgres/", description="dumps live under <prefix><conn_id>/<date>/")
    produce: bool = Field(True, description="make a pg_dump backup daily (01:00) for each database")
    compression: int = Field(6, ge=0, le=9, description="pg_dump -Z level (custom format)")
    max_age_hours: float = Field(26, gt=0)
    max_size_drop_fraction: float = Field(0.2, ge=0, le=1, description="newest vs previous backup size")
    restore_conn_id: str = Field("platform_db", min_length=1,
                                 description="server the restore test creates its scratch database on")
    restore_jobs: int = Field(2, ge=1, le=32, description="pg_restore -j and parallel checks")
    rto_minutes: float = Field(60, gt=0, description="recovery time objective the DR drill is timed against")
    smoke_queries: list[SmokeQuery] = []
    pg_bin_dir: str | None = Field(None, description="pg_dump/pg_restore folder; default: matched to the server")
