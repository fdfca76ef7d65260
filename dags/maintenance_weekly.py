"""Weekly maintenance (procedures 2.2), one run each weekday at 01:00, doing that day's theme:
Monday performance, cost and capacity; Tuesday patches, dependencies, certificates;
Wednesday deep database maintenance, index optimization, query review; Thursday restore
test, monthly DR drill, monitoring thresholds; Friday system health report, post-mortems."""

from datetime import datetime

from airflow.sdk import DAG, TaskGroup
from maintenance import dagkit
from maintenance.reports.operator import ReportOperator

with DAG(
    dag_id="maintenance_weekly",
    schedule=dagkit.timetable("0 1 * * 1-5"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=dagkit.default_args(),
    params=dagkit.trigger_form(destructive=False, theme=dagkit.theme_param()),
    tags=["maintenance", "weekly"],
    doc_md=dagkit.policy_doc("Weekly maintenance", __doc__),
) as dag:
    summary = dagkit.run_summary()

    with TaskGroup("friday") as friday:
        # Reports are read-only and still run in a blackout: not behind the gate.
        health_report = ReportOperator(task_id="health_report", kind="weekly")

    choose = dagkit.weekly_theme_branch({"friday": ["friday.health_report"]})
    choose >> friday >> summary
