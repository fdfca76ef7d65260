"""DAGs for the Celery test only (tests/test_celery.py).

``waits_probe``: six of the gates the maintenance DAGs put in front of their work, and six of
their timed waits. While the platform is busy the gates wait in reschedule mode; a scheduled
run's waits defer until 23:59 New York time. Twelve waiting tasks on two workers of two slots
each: if waiting held a slot, nothing else could run.

``archive_probe``: the archive move as the monthly DAG runs it (``ArchiveOperator``), with no
gate, and retried soon after a lost worker, so the test can kill the worker in the middle of
the move and watch the retry finish it on the other worker.
"""

from datetime import datetime, timedelta

from airflow.sdk import DAG, CronTriggerTimetable
from maintenance import dagkit
from maintenance.archive.operators import ArchiveOperator

with DAG(dag_id="waits_probe", schedule=CronTriggerTimetable("0 0 * * *", timezone="America/New_York"),
         start_date=datetime(2026, 1, 1), catchup=False, default_args=dagkit.default_args(retries=0),
         params=dagkit.trigger_form(destructive=False), tags=["test"]) as waits_probe:
    for n in range(6):
        dagkit.gate(f"gate_{n}")
        dagkit.wait_until(f"wait_{n}", 23, 59)

with DAG(dag_id="archive_probe", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
         default_args=dagkit.default_args(retries=2, retry_delay=timedelta(seconds=5),
                                          retry_exponential_backoff=0),
         params=dagkit.trigger_form(destructive=True), tags=["test"]) as archive_probe:
    ArchiveOperator(task_id="archive", conn_id="platform_db")
