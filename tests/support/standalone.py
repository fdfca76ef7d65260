"""Airflow under its real scheduler for a test: `airflow standalone` (scheduler, DAG processor,
API server, triggerer, LocalExecutor) on a throwaway home, the test's connections and policy
passed through, stopped with its whole process group at the end."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from devtools import servers
from devtools.topology import stop_groups

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def _parsed(db: Path, dag_ids: list[str]) -> bool:
    if not db.exists():
        return False
    try:
        with sqlite3.connect(db) as conn:
            found = {r[0] for r in conn.execute("SELECT dag_id FROM serialized_dag")}
    except sqlite3.Error:
        return False
    return set(dag_ids) <= found


@contextmanager
def standalone(home: Path, dags_folder: Path, dag_ids: list[str], **extra_env: str):
    """Yield (env, metadata database path) once the DAGs are parsed and the API answers."""
    home.mkdir(parents=True, exist_ok=True)
    port = servers.free_port()
    env = os.environ | {
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db", "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "standalone-test-secret", "AIRFLOW__API__SECRET_KEY": "standalone-test-key",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5", "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
    } | extra_env
    env.pop("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", None)  # the suite's bundles are not this one's
    log_path = home / "standalone.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([AIRFLOW, "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while not (_parsed(home / "airflow.db", dag_ids) and servers.port_open(port)):
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_bytes()[-99:]
                time.sleep(1)
            # The pools the DAGs run in: without them the scheduler never starts their tasks.
            pools = subprocess.run([sys.executable, "-m", "devtools.pools"], env=env, cwd=ROOT, capture_output=True,
                                   text=True, check=True, timeout=120).stdout
            (home / "pools.json").write_text(pools)
            cli(env, "pools", "import", str(home / "pools.json"))
            yield env, home / "airflow.db"
        finally:
            stop_groups([proc])


def cli(env: dict, *args: str) -> str:
    """An `airflow` command, tried again for half a minute as a person would: SQLite may be busy
    with the scheduler for a moment."""
    for _ in range(15):
        done = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode == 0:
            return done.stdout
        time.sleep(2)
    raise AssertionError(done.stdout[-2000:] + done.stderr[-2000:])


def _backfills_running(db: Path, dag_id: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM backfill WHERE dag_id = ? AND completed_at IS NULL",
                            (dag_id,)).fetchone()[0]


def runs(db: Path, dag_id: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT run_id, run_type, state FROM dag_run WHERE dag_id = ?", (dag_id,)).fetchall()


def wait_until_finished(db: Path, dag_id: str, *, count: int, timeout: float,
                        run_type: str | None = None) -> list[tuple[str, str, str]]:
    """The DAG's runs (of ``run_type`` only, when given) once ``count`` of them have all finished.

    A backfill test gives ``run_type="backfill"``: the catch-up run the scheduler makes when the
    DAG is unpaused may be waiting for the hours of its timed waits (between 00:00 and 05:00 New
    York time it does, for the daily DAG), and it is not what the test waits for. It also waits
    for the backfill itself to be marked complete (the scheduler looks every 30 s, after the
    runs end): until then Airflow refuses another backfill of the DAG."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in runs(db, dag_id) if run_type is None or r[1] == run_type]
        if len(found) >= count and all(state in ("success", "failed") for *_, state in found) \
                and not (run_type == "backfill" and _backfills_running(db, dag_id)):
            return found
        assert time.monotonic() < deadline, runs(db, dag_id)
        time.sleep(2)
