"""A DAG for the overlap test only: every run holds one table's target lock for a few seconds.

A backfill and a manual run started at the same moment under the real scheduler must never
hold the table at once; a run that finds it held says who holds it (tests/test_overlap.py).
"""

import os
import time
from datetime import UTC, datetime

from airflow.sdk import DAG, CronTriggerTimetable, task

TARGET = "platform_db:public.overlap_probe"


@task(retries=0)
def hold(**context):
    import psycopg
    from maintenance.postgres.target_lock import TargetBusy, target_lock

    run_id = context["dag_run"].run_id
    holder = f"maintenance overlap_probe {run_id} hold"
    with psycopg.connect(os.environ["OVERLAP_DSN"], autocommit=True) as conn:
        try:
            with target_lock(conn, TARGET, holder=holder, wait_s=1, poll_s=0.2):
                started = datetime.now(UTC)
                time.sleep(8)  # long enough that runs the scheduler starts together meet here
                conn.execute("INSERT INTO overlap_probe VALUES (%s, 'held', %s, %s, NULL)",
                             (run_id, started, datetime.now(UTC)))
        except TargetBusy as exc:
            conn.execute("INSERT INTO overlap_probe VALUES (%s, 'busy', NULL, NULL, %s)", (run_id, str(exc)))


with DAG(dag_id="overlap_probe", schedule=CronTriggerTimetable("0 0 * * *", timezone="America/New_York"),
         start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=4, tags=["test"]) as dag:
    hold()
