"""The distributed executor, proven without Docker: the compose stack's topology as processes.

CeleryExecutor with a Redis broker and a PostgreSQL metadata database; scheduler, DAG
processor, triggerer, API server and two Celery workers of two slots each (devtools.topology,
set up by devtools.stack_init as the compose stack's init service does). Against the suite's
platform (PostgreSQL, Redis, S3, Slack stand-ins) it shows, in one stack:

1. waiting holds no worker slot: while the platform is busy, twelve tasks wait (six gates in
   reschedule mode, six timed waits deferred) and the daily DAG's critical work still runs on
   the four slots; when the load drops, the gates let the work through and the daily run
   completes;
2. a worker killed (SIGKILL of its whole process group, the machine lost) in the middle of an
   archive move: the task is retried on the other worker and finishes; every row is in the
   source or in the archive, once;
3. no two tasks of one pool ever overlapped (a database's pool, the cache's pool: one slot each),
   whichever worker ran them.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import empty_bucket
from tests.support.load import active_users

ROOT = Path(__file__).resolve().parents[1]
WORKERS = ("worker1", "worker2")
OLD_ROWS = 60_000


@pytest.fixture
def stack(pg_server, platform_db, redis_server, s3, slack, tmp_path, monkeypatch):
    import psycopg

    from devtools import servers, topology

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "api.log").write_text("GET / 200\n" * 100)
    policy = yaml.safe_load((ROOT / "include" / "maintenance_policy.yaml").read_text())
    policy["logs"]["folders"] = [{"name": "api", "path": str(logs), "retention_days": 0}]
    policy["decision"]["load"].update(active_users_threshold=5, recheck_after_minutes=10 / 60,
                                      give_up_after_minutes=30)
    # Small, paced batches: the move takes long enough to be killed in the middle.
    policy["archive"]["batching"].update(initial_rows=200, min_rows=100, max_rows=300, target_ms=50, pause_ms=40)
    policy["archive"]["load_check_seconds"] = 1
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    monkeypatch.setenv("MAINTENANCE_POLICY_FILE", str(tmp_path / "policy.yaml"))
    for bucket in ("pathfinity-backups", "pathfinity-logs"):
        empty_bucket(s3, bucket)
    broker = servers.start_redis(tmp_path / "broker")
    meta = f"airflow_celery_{int(time.time())}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{meta}"')
    stack = topology.start(tmp_path / "airflow", dags_folder=ROOT / "tests" / "dags_celery",
                           dag_ids=["maintenance_daily", "waits_probe", "archive_probe"],
                           metadata_dsn=pg_server.dsn(meta), broker_url=broker.url(0), workers=2)
    try:
        yield stack
    finally:
        stack.stop()
        broker.stop()


def states(stack, dag_id: str, run_id: str) -> dict[str, str]:
    return {f"{t}[{m}]" if m >= 0 else t: s for t, m, s in stack.query(
        "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))}


def wait_for(what, check, timeout: float, stack, shown=lambda: None):
    deadline = time.monotonic() + timeout
    while True:
        stack.check_running()
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s: {shown()}"
        time.sleep(1)


def test_celery_topology_waits_hold_no_slot_a_lost_worker_loses_nothing_pools_never_overlap(stack, platform_db):
    db = platform_db
    # 1. Busy: the gates wait (reschedule), the scheduled probe run's timed waits defer.
    active_users(db, 50)
    stack.cli("dags", "trigger", "waits_probe", "--run-id", "busy_gates")
    # A backfill of one day: runs beside the scheduled run of today (whose timed waits defer for
    # hours), where a triggered run would queue behind it (max_active_runs=1).
    stack.cli("backfill", "create", "--dag-id", "maintenance_daily", "--from-date", "2026-11-10",
              "--to-date", "2026-11-11", "--max-active-runs", "1")
    daily_run = wait_for("the backfill's run", lambda: stack.query(
        "SELECT run_id FROM dag_run WHERE dag_id = 'maintenance_daily' AND run_type = 'backfill'"), 120, stack)[0][0]

    def waiting():
        rows = stack.query("SELECT state, count(*) FROM task_instance WHERE dag_id = 'waits_probe' "
                           "AND state IN ('up_for_reschedule', 'deferred') GROUP BY state")
        counts = dict(rows)
        return counts if counts.get("up_for_reschedule", 0) >= 6 and counts.get("deferred", 0) >= 6 else None

    counts = wait_for("six gates rescheduled and six waits deferred", waiting, 240, stack)
    assert sum(counts.values()) >= 12 > 2 * len(WORKERS)  # more waiting tasks than worker slots

    # While twelve tasks wait, the daily run's critical work (never gated) runs and finishes.
    critical = ("backup", "verify_backup", "security_scan", "calendar_review")
    wait_for("the daily run's critical work done while the gates wait",
             lambda: all(states(stack, "maintenance_daily", daily_run).get(t) == "success" for t in critical)
             and states(stack, "maintenance_daily", daily_run).get("window_notice") in ("success", "skipped"),
             300, stack, lambda: states(stack, "maintenance_daily", daily_run))
    gates = states(stack, "maintenance_daily", daily_run)
    assert not {gates[g] for g in ("gate_logs", "gate_cache", "gate_statistics")} & {"success", "skipped"}, gates

    # 2. The load drops: the gates let the work through, the daily run completes.
    db.execute("UPDATE learning_sessions SET ended_at = now() WHERE ended_at IS NULL")
    assert stack.wait_run("maintenance_daily", daily_run, timeout=600) == "success", \
        states(stack, "maintenance_daily", daily_run)
    assert stack.wait_run("waits_probe", "busy_gates", timeout=300) == "success"
    daily = states(stack, "maintenance_daily", daily_run)
    assert daily["cache_optimization"] == "success" and daily["log_rotation"] == "success"
    assert any(k.startswith("db_statistics[") and v == "success" for k, v in daily.items()), daily

    # 3. A worker lost in the middle of an archive move.
    db.execute("INSERT INTO learning_sessions (student_id, career_id, created_at, ended_at) "
               "SELECT g, 1, timestamptz '2025-01-01' + g * interval '1 second', now() "
               "FROM generate_series(1, %s) g", (OLD_ROWS,))
    cutoff = "2026-05-27"  # six months before the run's date: every row above is older
    before = db.execute("SELECT count(*), sum(id) FROM learning_sessions WHERE created_at < %s", (cutoff,))[0]
    stack.cli("dags", "trigger", "archive_probe", "--run-id", "archive_kill", "--conf", '{"dry_run": false}',
              "--logical-date", "2026-11-27T05:00:00+00:00")

    def moving():
        rows = stack.query("SELECT hostname FROM task_instance WHERE dag_id = 'archive_probe' AND state = 'running'")
        if not rows:
            return None
        archived = db.execute("SELECT to_regclass('public.learning_sessions_archive') IS NOT NULL")[0][0] and \
            db.execute("SELECT count(*) FROM learning_sessions_archive")[0][0]
        return rows[0][0] if archived and archived > 1000 else None

    victim = wait_for("the archive move under way", moving, 300, stack, lambda: states(stack, "archive_probe",
                                                                                        "archive_kill"))
    assert victim in WORKERS
    archived_at_kill = db.execute("SELECT count(*) FROM learning_sessions_archive")[0][0]
    stack.kill(victim)
    assert archived_at_kill < OLD_ROWS  # killed in the middle
    assert stack.wait_run("archive_probe", "archive_kill", timeout=600) == "success"
    (host, tries), = stack.query("SELECT hostname, try_number FROM task_instance WHERE dag_id = 'archive_probe'")
    assert host == next(w for w in WORKERS if w != victim) and tries >= 2, (host, tries)
    left = db.execute("SELECT count(*) FROM learning_sessions WHERE created_at < %s", (cutoff,))[0][0]
    moved = db.execute("SELECT count(*), count(DISTINCT id), sum(id) FROM learning_sessions_archive "
                       "WHERE created_at < %s", (cutoff,))[0]
    assert left == 0 and moved == (before[0], before[0], before[1])  # every row once, none lost

    # 4. One pool slot, one task at a time, on whichever worker.
    rows = stack.query("SELECT pool, task_id, map_index, hostname, start_date, end_date FROM task_instance "
                       "WHERE pool IN ('pg_platform_db', 'redis_platform') AND start_date IS NOT NULL "
                       "AND end_date IS NOT NULL AND state = 'success' ORDER BY pool, start_date")
    assert {r[0] for r in rows} == {"pg_platform_db", "redis_platform"}
    for pool, group in itertools.groupby(rows, key=lambda r: r[0]):
        for before_, after in itertools.pairwise(list(group)):
            assert before_[5] <= after[4], (pool, before_, after)
    hosts = {h for (h,) in stack.query("SELECT DISTINCT hostname FROM task_instance WHERE hostname <> ''")}
    assert hosts == set(WORKERS), hosts
