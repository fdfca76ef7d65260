"""Backfills: past days run twice; the second pass changes nothing.

Each task keys its work to the run's logical date (backups by date, archive cutoffs by date,
log objects by file), so re-running dates, as ``airflow backfill create`` does, is safe. The
first test runs ``airflow backfill create`` under the real scheduler (``airflow standalone``,
LocalExecutor), twice over the same days; the others go through ``dag.test`` one date at a
time, with dry run off as a backfill's runs have it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from maintenance import clock

from tests.conftest import empty_bucket, use_policy
from tests.support.airflow_runs import run_dag


@pytest.fixture
def backfill_env(platform_db, redis_server, s3, airflow_db, slack, tmp_path, monkeypatch):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "api.log").write_text("GET / 200\n" * 100)
    use_policy(tmp_path, monkeypatch, logs={"folders": [{"name": "api", "path": str(logs), "retention_days": 0}]})
    monkeypatch.setattr(clock, "now", lambda: datetime.now(UTC))
    for bucket in ("pathfinity-backups", "pathfinity-logs"):
        empty_bucket(s3, bucket)
    return platform_db, s3


def stored(s3) -> dict[str, str]:
    found = {}
    for bucket in ("pathfinity-backups", "pathfinity-logs"):
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            found[f"{bucket}/{item['Key']}"] = item["ETag"]
    return found


def test_airflow_backfill_create_twice_over_the_same_days_changes_nothing_the_second_time(backfill_env, tmp_path):
    from tests.support.standalone import ROOT, cli, standalone, wait_until_finished

    db, s3 = backfill_env
    only = tmp_path / "dags"  # the daily DAG alone: no other DAG's catch-up runs take the slots
    only.mkdir()
    (only / "maintenance_daily.py").symlink_to(ROOT / "dags" / "maintenance_daily.py")
    with standalone(tmp_path / "airflow", only, ["maintenance_daily"]) as (env, airflow_db):
        days = ["--from-date", "2026-11-10", "--to-date", "2026-11-12"]  # the 10th and the 11th
        cli(env, "backfill", "create", "--dag-id", "maintenance_daily", *days, "--max-active-runs", "1")
        first = wait_until_finished(airflow_db, "maintenance_daily", count=2, timeout=400, run_type="backfill")
        assert [s for _, kind, s in first if kind == "backfill"] == ["success", "success"], first
        after_first = stored(s3)
        backups = sorted(k for k in after_first if k.endswith(".dump") and "/2026-11-1" in k)
        assert [k.split("/")[3] for k in backups] == ["2026-11-10", "2026-11-11"]
        cli(env, "backfill", "create", "--dag-id", "maintenance_daily", *days, "--max-active-runs", "1",
            "--reprocess-behavior", "completed")
        second = wait_until_finished(airflow_db, "maintenance_daily", count=2, timeout=400, run_type="backfill")
        assert [s for _, kind, s in second if kind == "backfill"] == ["success", "success"], second
    assert stored(s3) == after_first  # the same days again: not one object added or rewritten
    again = db.execute("SELECT count(DISTINCT try_number) FROM maintenance.task_runs WHERE task_id = 'backup' "
                       "AND logical_date::date IN ('2026-11-10', '2026-11-11') AND dag_id = 'maintenance_daily'")
    assert again[0][0] >= 1


def test_three_days_backfilled_twice_change_nothing_the_second_time(backfill_env):
    db, s3 = backfill_env
    days = [datetime(2026, 11, 2, 5, tzinfo=UTC) + timedelta(days=n) for n in range(3)]
    first = [run_dag("maintenance_daily", day) for day in days]
    assert all(r.state == "success" for r in first), [r.states for r in first if r.state != "success"]
    after_first = stored(s3)
    backups = sorted(k for k in after_first if k.endswith(".dump"))
    assert [k.split("/")[3] for k in backups] == ["2026-11-02", "2026-11-03", "2026-11-04"]
    rows_before = db.execute("SELECT count(*) FROM learning_sessions")

    second = [run_dag("maintenance_daily", day) for day in days]
    assert all(r.state == "success" for r in second)
    assert stored(s3) == after_first  # not one object added or rewritten
    assert all(r.xcom("backup")["existing"] for r in second)
    assert all(r.xcom("log_rotation")["folders"][0]["uploaded"] == [] for r in second)
    assert db.execute("SELECT count(*) FROM learning_sessions") == rows_before


def test_monthly_archive_backfilled_twice_under_the_scheduler_moves_rows_once(backfill_env, tmp_path):
    """`airflow backfill create` over two monthly windows, then again over the same ones: each
    window archives what its date makes old, and the second pass moves nothing."""
    from tests.support.standalone import ROOT, cli, standalone, wait_until_finished

    db, _ = backfill_env
    # The window on each month's first Sunday, as the procedures first wrote it: the DAG is then
    # due on those two Sundays only (placed around blackouts, it is due every Sunday: tested in
    # test_change.py), and the backfill makes two runs per pass.
    policy = Path(os.environ["MAINTENANCE_POLICY_FILE"])
    data = yaml.safe_load(policy.read_text())
    data["planned_window"]["placement"] = "fixed"
    policy.write_text(yaml.safe_dump(data))
    db.execute("TRUNCATE learning_sessions, pathiq_metrics RESTART IDENTITY")
    db.execute("DROP TABLE IF EXISTS learning_sessions_archive, pathiq_metrics_archive")
    db.execute("""INSERT INTO learning_sessions (student_id, career_id, created_at)
                  SELECT g, 1, timestamptz '2026-01-01' + g * interval '1 hour' FROM generate_series(1, 8000) g""")
    only = tmp_path / "dags"  # the monthly DAG alone: no other DAG's catch-up runs beside it
    only.mkdir()
    (only / "maintenance_monthly.py").symlink_to(ROOT / "dags" / "maintenance_monthly.py")
    windows = ["--from-date", "2026-10-01", "--to-date", "2026-11-02"]  # the first Sundays 10-04 and 11-01
    # Paused until the backfill exists, as on a fresh install: unpaused first, the scheduler would
    # add its own catch-up run for the latest window and the backfill would leave that date out.
    with standalone(tmp_path / "airflow", only, ["maintenance_monthly"],
                    AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True") as (env, airflow_db):
        cli(env, "backfill", "create", "--dag-id", "maintenance_monthly", *windows, "--max-active-runs", "1")
        cli(env, "dags", "unpause", "maintenance_monthly")  # a paused DAG's backfill runs wait
        first = wait_until_finished(airflow_db, "maintenance_monthly", count=2, timeout=400, run_type="backfill")
        assert [s for _, kind, s in first if kind == "backfill"] == ["success", "success"], first
        cli(env, "backfill", "create", "--dag-id", "maintenance_monthly", *windows, "--max-active-runs", "1",
            "--reprocess-behavior", "completed")
        second = wait_until_finished(airflow_db, "maintenance_monthly", count=2, timeout=400, run_type="backfill")
        assert [s for _, kind, s in second if kind == "backfill"] == ["success", "success"], second
    moves = db.execute("SELECT logical_date::date, try_number, rows_affected FROM maintenance.actions "
                       "WHERE dag_id = 'maintenance_monthly' AND action = 'move_rows' AND outcome = 'applied' "
                       "AND target = 'platform_db:public.learning_sessions' ORDER BY started_at")
    dates = [str(d) for d, _, _ in moves]
    # Each window once in the first pass; in the second, each again (a retried `backfill create`
    # may reprocess a window twice), moving nothing.
    assert dates[:2] == ["2026-10-04", "2026-11-01"] and sorted(set(dates[2:])) == dates[:2], moves
    first_pass, second_pass = [r for *_, r in moves[:2]], [r for *_, r in moves[2:]]
    # October's cutoff is 2026-04-04, November's 2026-05-01: each moved what its date made old.
    assert first_pass[0] > 0 and first_pass[1] > 0
    archived = db.execute("SELECT count(*), max(created_at) FROM learning_sessions_archive")[0]
    assert archived[0] == sum(first_pass) and archived[1] < datetime(2026, 5, 1, 4, tzinfo=UTC)
    assert set(second_pass) == {0}  # the same windows again: not one row moved
    assert db.execute("SELECT count(*) FROM learning_sessions")[0][0] + archived[0] == 8000
