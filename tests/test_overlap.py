"""A backfill overlapping another run, under the real scheduler (LocalExecutor): the target lock
keeps them off one table at a time, and the one that waits names the holder.

`max_active_runs` does not stop a backfill from running beside other runs of the same DAG;
the per-target lock (maintenance.postgres.target_lock) is what does. This runs Airflow as
`make demo` does (`airflow standalone`: scheduler, DAG processor, API server, triggerer) on a
throwaway home, creates a backfill with `airflow backfill create` and triggers a run at the
same moment, and reads what each run did from the table's database.
"""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools import servers

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def scheduler(platform_db, tmp_path):
    platform_db.execute("DROP TABLE IF EXISTS overlap_probe; CREATE TABLE overlap_probe "
                        "(run_id text, outcome text, started timestamptz, ended timestamptz, why text)")
    home = tmp_path / "airflow"
    home.mkdir()
    port = servers.free_port()
    env = os.environ | {
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "tests" / "dags_overlap"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db", "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "overlap-test-secret", "AIRFLOW__API__SECRET_KEY": "overlap-test-key",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5", "OVERLAP_DSN": platform_db.dsn,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
    }
    env.pop("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", None)  # the suite's bundles are not this one's
    log = open(tmp_path / "standalone.log", "wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "standalone"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not (_dag_parsed(home / "airflow.db") and servers.port_open(port)):  # parsed, and the API up
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "standalone.log").read_bytes()[-99:]
            time.sleep(1)
        yield env, home
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def _dag_parsed(db: Path) -> bool:
    if not db.exists():
        return False
    try:
        with sqlite3.connect(db) as conn:
            return bool(conn.execute("SELECT 1 FROM serialized_dag WHERE dag_id = 'overlap_probe'").fetchall())
    except sqlite3.Error:
        return False


def _runs(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT run_id, run_type, state FROM dag_run WHERE dag_id = 'overlap_probe'").fetchall()


def test_a_backfill_and_a_run_at_the_same_moment_never_hold_one_table_at_once(scheduler, platform_db):
    env, home = scheduler
    airflow = str(Path(sys.executable).parent / "airflow")

    def cli(*args):  # SQLite may be busy with the scheduler for a moment: try again, as a person would
        for _ in range(5):
            done = subprocess.run([airflow, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
            if done.returncode == 0:
                return
            time.sleep(1)
        raise AssertionError(done.stdout[-2000:] + done.stderr[-2000:])

    # The backfill's runs and a manual run, created one right after the other: the scheduler starts
    # them together (the DAG allows four active runs).
    cli("backfill", "create", "--dag-id", "overlap_probe", "--from-date", "2026-11-02", "--to-date", "2026-11-04",
        "--max-active-runs", "3")
    cli("dags", "trigger", "overlap_probe")
    deadline = time.monotonic() + 240
    while True:
        runs = _runs(home / "airflow.db")  # the backfill's (to-date excluded), the manual one, maybe a scheduled one
        kinds = sorted(kind for _, kind, _ in runs)
        if kinds.count("backfill") >= 2 and "manual" in kinds and all(s in ("success", "failed") for *_, s in runs):
            break
        assert time.monotonic() < deadline, runs
        time.sleep(2)
    assert all(state == "success" for _, _, state in runs), runs
    rows = platform_db.execute("SELECT run_id, outcome, started, ended, why FROM overlap_probe ORDER BY started")
    held = [r for r in rows if r[1] == "held"]
    busy = [r for r in rows if r[1] == "busy"]
    assert len(rows) == len(runs) and held and busy, rows
    for before, after in itertools.pairwise(held):  # one holder at a time
        assert before[3] <= after[2], (before, after)
    holders = {r[0] for r in held}
    for _, _, _, _, why in busy:  # whoever waited named a run that held the table
        assert why.startswith("platform_db:public.overlap_probe is being maintained by maintenance overlap_probe ")
        # (its session's application_name, which PostgreSQL cuts at 63 characters)
        assert any(f"maintenance overlap_probe {h}"[:63] in why for h in holders), why
