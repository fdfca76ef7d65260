"""Monthly maintenance (procedures 2.3) in the planned window: update review,
security audit, database reorganization, compliance verification, monthly report."""

from airflow.sdk import chain
from maintenance import dagkit
from maintenance.postgres.operators import DebloatOperator
from maintenance.reports.operator import ReportOperator

with dagkit.maintenance_dag(
    "maintenance_monthly",
    cron=dagkit.policy().planned_window.cron,  # the planned window's start
    title="Monthly maintenance",
    doc=__doc__,
    destructive=True,
    tags=["monthly"],
    tables=dagkit.tables_param(),
) as dag:
    # Reorganization takes locks that are not zero-downtime: only inside the window.
    gate_window = dagkit.gate("gate_window", zero_downtime=False, affected_users=1_000_000)
    monthly_report = ReportOperator(task_id="monthly_report", kind="monthly")
    summary = dagkit.run_summary()

    chain(gate_window, dagkit.per_database(DebloatOperator, "debloat"), summary)
    monthly_report >> summary
