"""Daily maintenance (procedures 2.1): logs 00:00, cache 02:00, statistics 03:00,
backup verification 04:00 (critical), security scan 05:00 (critical)."""

from datetime import datetime

from airflow.sdk import DAG
from maintenance import dagkit

with DAG(
    dag_id="maintenance_daily",
    schedule=dagkit.timetable("0 0 * * *"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=dagkit.default_args(),
    params=dagkit.trigger_form(destructive=False),
    tags=["maintenance", "daily"],
    doc_md=dagkit.policy_doc("Daily maintenance", __doc__),
) as dag:
    at_0300 = dagkit.wait_until("at_0300", 3)
    gate_statistics = dagkit.gate("gate_statistics")
    summary = dagkit.run_summary()

    at_0300 >> gate_statistics >> summary
