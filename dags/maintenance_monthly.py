"""Monthly maintenance (procedures 2.3) in the planned window: update review,
security audit, database reorganization, compliance verification, monthly report."""

from datetime import datetime

from airflow.sdk import DAG, chain
from maintenance import dagkit
from maintenance.postgres.operators import DebloatOperator
from maintenance.reports.operator import ReportOperator

with DAG(
    dag_id="maintenance_monthly",
    schedule=dagkit.timetable(dagkit.policy().planned_window.cron),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=dagkit.default_args(),
    params=dagkit.trigger_form(destructive=True, tables=dagkit.tables_param()),
    tags=["maintenance", "monthly"],
    doc_md=dagkit.policy_doc("Monthly maintenance", __doc__),
) as dag:
    # Reorganization takes locks that are not zero-downtime: only inside the window.
    gate_window = dagkit.gate("gate_window", zero_downtime=False, affected_users=1_000_000)
    monthly_report = ReportOperator(task_id="monthly_report", kind="monthly")
    summary = dagkit.run_summary()

    chain(gate_window, dagkit.per_database(DebloatOperator, "debloat"), summary)
    monthly_report >> summary
