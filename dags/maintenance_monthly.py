"""Monthly maintenance (procedures 2.3) in the planned window: update review,
security audit, database reorganization, compliance verification, monthly report.

Built so far: the update review (EC2 instances on old or vanished images or stopped for
long, RDS behind its minimum engine version or without minor updates), the security
posture audit (PostgreSQL, Redis, S3) and compliance evidence from the ledger (read-only,
not gated); archiving of rows older than six months into archive tables (online, in
batches, whole partitions for partitioned tables; full months optionally copied to S3),
then partition planning (next months' partitions created ahead, proposals for large
unpartitioned tables), behind a zero-downtime gate: they run whenever the calendar and the
load allow; table de-bloat (pg_repack, or VACUUM FULL for allowed tables) and Prometheus
series deletion (the policy's selectors, after a snapshot) inside the window; the monthly
report."""

from airflow.sdk import chain
from maintenance import dagkit
from maintenance.archive.operators import ArchiveOperator, PartitionPlanningOperator
from maintenance.aws.operators import UpdateReviewOperator
from maintenance.monitoring.operators import SeriesDeletionOperator
from maintenance.postgres.operators import DebloatOperator
from maintenance.reports.operator import ReportOperator
from maintenance.security.operators import ComplianceOperator, PostureAuditOperator

with dagkit.maintenance_dag(
    "maintenance_monthly",
    cron=dagkit.policy().planned_window.cron,  # the planned window's start, on every day it may fall
    title="Monthly maintenance",
    doc=__doc__,
    destructive=True,
    tags=["monthly"],
    deadline_hours=4,  # the planned window is four hours
    deadline_promise="the monthly maintenance has overrun the planned window",
    tables=dagkit.tables_param(),
    archive_as_of=dagkit.archive_as_of_param(),
) as dag:
    summary = dagkit.run_summary()

    # Archiving moves rows in small transactions and never blocks the platform: zero-downtime.
    gate_archive = dagkit.gate("gate_archive")
    chain(gate_archive, dagkit.per_database(ArchiveOperator, "archive"),
          dagkit.per_database(PartitionPlanningOperator, "partition_planning"), summary)

    # Reorganization takes locks that are not zero-downtime: only inside the window.
    gate_window = dagkit.gate("gate_window", zero_downtime=False, affected_users=1_000_000)
    debloat = dagkit.per_table(DebloatOperator, "debloat")
    chain(gate_window, debloat.plans, debloat.steps, summary)
    # Deleting series from Prometheus (the policy's selectors, after a snapshot): also in the window.
    chain(gate_window, SeriesDeletionOperator(task_id="prometheus_series_deletion"), summary)

    # Read-only reviews: not gated.
    chain(UpdateReviewOperator(task_id="update_review"), summary)
    chain(PostureAuditOperator(task_id="security_audit"), summary)
    chain(ComplianceOperator(task_id="compliance"), summary)
    monthly_report = ReportOperator(task_id="monthly_report", kind="monthly")
    monthly_report >> summary

    # Due on every candidate day of the window (it moves around blackouts); scheduled runs on
    # the other days end here.
    dagkit.months_run_day(dag)
