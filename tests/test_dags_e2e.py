"""The DAGs end to end on a blackout day: non-critical work is skipped with its reason,
critical work (backups, the security scan) runs, and the summary says which is which."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from maintenance import clock

from tests.conftest import empty_bucket
from tests.support.airflow_runs import run_dag

CHRISTMAS_EVE = datetime(2026, 12, 24, 5, tzinfo=UTC)  # the holidays blackout (12-20 to 01-05)


@pytest.fixture
def services(platform_db, redis_server, s3, airflow_db, slack, monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: CHRISTMAS_EVE)
    empty_bucket(s3, "pathfinity-backups")  # verification compares the newest with the one before
    return platform_db, s3, slack


def test_daily_in_a_blackout_runs_only_the_critical_work(services):
    _, _, slack = services
    result = run_dag("maintenance_daily", CHRISTMAS_EVE)
    gated = {"gate_logs": "skipped", "log_rotation": "skipped", "gate_cache": "skipped",
             "cache_optimization": "skipped", "gate_statistics": "skipped", "db_statistics": "skipped"}
    critical = {"backup": "success", "verify_backup": "success", "security_scan": "success"}
    waits = {t: "success" for t in ("at_0100", "at_0200", "at_0300", "at_0400", "at_0500")}
    assert result.states == gated | critical | waits | {"run_summary": "success"}
    (message,) = slack.messages("#ops-maintenance")
    assert "3 done" not in message["text"] and "Skipped: `log_rotation`" in message["text"]
    assert "Holiday season" in message["text"]


def test_monthly_in_a_blackout_skips_reorganization_but_audits(services):
    result = run_dag("maintenance_monthly", CHRISTMAS_EVE, {"dry_run": False})
    assert {t: result.states[t] for t in ("gate_archive", "archive", "partition_planning", "gate_window",
                                          "debloat")} == {t: "skipped" for t in (
        "gate_archive", "archive", "partition_planning", "gate_window", "debloat")}
    assert {t: result.states[t] for t in ("security_audit", "compliance", "monthly_report", "run_summary")} == {
        "security_audit": "success", "compliance": "success", "monthly_report": "success",
        "run_summary": "success"}


def test_a_forced_run_with_a_reason_does_the_work_and_records_why(services):
    db, _, _ = services
    result = run_dag("maintenance_daily", CHRISTMAS_EVE,
                     {"force": True, "force_reason": "disk filling up on web-1"},
                     mark_success_pattern=r"^(backup|verify_backup|security_scan|cache_optimization)$")
    assert result.states["log_rotation"] == "success" and result.states["db_statistics"] == "success"
    reasons = db.execute("SELECT DISTINCT forced_reason FROM maintenance.task_runs WHERE run_id = %s "
                         "AND task_id = 'db_statistics'", (result.run.run_id,))
    assert reasons == [("disk filling up on web-1",)]
