"""Weekly maintenance (procedures 2.2), one DAG run per weekday theme:
Monday performance, cost and capacity; Tuesday patches, dependencies, certificates;
Wednesday deep database maintenance; Thursday restore test and monitoring review;
Friday health report and post-mortems."""

from datetime import datetime

from airflow.sdk import DAG
from maintenance import dagkit

with DAG(
    dag_id="maintenance_weekly",
    schedule=dagkit.timetable("0 1 * * 1-5"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=dagkit.default_args(),
    params=dagkit.trigger_form(destructive=False),
    tags=["maintenance", "weekly"],
    doc_md=dagkit.policy_doc("Weekly maintenance", __doc__),
) as dag:
    gate = dagkit.gate("gate")
    summary = dagkit.run_summary()

    gate >> summary
