"""Weekly maintenance (procedures 2.2), one run each weekday at 01:00, doing that day's theme:
Monday Redis big keys, S3 lifecycle rules, cost (the week's AWS cost per student per day),
performance and capacity (leak suspects, throttling, service levels, headroom);
Tuesday security patches (the Kubernetes nodes), dependencies, certificates; Wednesday deep
database maintenance, index optimization, query review; Thursday restore test, monthly DR
drill, alert rule review, Prometheus housekeeping (scrape targets, series, dashboards);
Friday system health report, post-mortems, documentation review."""

from airflow.sdk import TaskGroup, chain
from maintenance import dagkit
from maintenance.backups.operators import RestoreTestOperator
from maintenance.costs.operators import CostReviewOperator
from maintenance.documentation.operators import DocumentationReviewOperator
from maintenance.kubernetes.operators import PatchReviewOperator
from maintenance.logs.operators import S3LifecycleOperator
from maintenance.monitoring.operators import (
    AlertReviewOperator,
    CapacityReviewOperator,
    PrometheusHousekeepingOperator,
)
from maintenance.postgres.operators import BloatAnalysisOperator, PostgresReviewOperator, ReindexOperator
from maintenance.redis.operators import RedisBigKeysOperator
from maintenance.reports.operator import ReportOperator
from maintenance.reports.postmortems import PostMortemSummaryOperator
from maintenance.security.operators import CertificateReviewOperator, DependencyReviewOperator

with dagkit.maintenance_dag(
    "maintenance_weekly",
    cron="0 1 * * 1-5",
    title="Weekly maintenance",
    doc=__doc__,
    destructive=False,
    tags=["weekly"],
    theme=dagkit.theme_param(),
    tables=dagkit.tables_param(),
    dr_drill=dagkit.drill_param(),
) as dag:
    summary = dagkit.run_summary()

    with TaskGroup("monday") as monday:
        # Performance, cost and capacity: where the cache's memory goes, per namespace; S3 lifecycle rules.
        gate_monday = dagkit.gate("gate")
        chain(gate_monday, RedisBigKeysOperator(task_id="redis_big_keys", pool=dagkit.REDIS_POOL))
        chain(gate_monday, S3LifecycleOperator(task_id="s3_lifecycle"))
        # The week's cost per student per day against the target: read-only, not gated.
        cost_review = CostReviewOperator(task_id="cost_review")
        # Leak suspects, throttling, service levels, headroom and when it runs out: read-only, not gated.
        capacity_review = CapacityReviewOperator(task_id="capacity_review")

    with TaskGroup("tuesday") as tuesday:
        # Security patches, dependency updates and certificates: read-only reviews, not gated.
        patch_review = PatchReviewOperator(task_id="patch_review")
        dependency_review = DependencyReviewOperator(task_id="dependency_review")
        certificate_review = CertificateReviewOperator(task_id="certificate_review")

    with TaskGroup("wednesday") as wednesday:
        # Deep database maintenance, index optimization, query review. The review reports the
        # week's indexes and queries as they were, then the index work changes them.
        gate_db = dagkit.gate("gate")
        reindex = dagkit.per_table(ReindexOperator, "reindex")
        chain(gate_db, dagkit.per_database(BloatAnalysisOperator, "bloat_analysis"),
              dagkit.per_database(PostgresReviewOperator, "review"), reindex.plans, reindex.steps)

    with TaskGroup("thursday") as thursday:
        # Restore test of the newest backup; the month's first Thursday makes it the DR drill.
        # Backups are critical work: not gated, so a long blackout never leaves them untested.
        restore_server = dagkit.pool_for(dagkit.policy().backups.restore_conn_id)
        restore_tests = dagkit.per_database(RestoreTestOperator, "restore_test", pooled=False, **restore_server)
        alert_review = AlertReviewOperator(task_id="alert_review")  # read-only: proposals wait for a person
        housekeeping = PrometheusHousekeepingOperator(task_id="prometheus_housekeeping")  # read-only

    with TaskGroup("friday") as friday:
        # Reports are read-only and still run in a blackout: not behind the gate.
        health_report = ReportOperator(task_id="health_report", kind="weekly")
        post_mortems = PostMortemSummaryOperator(task_id="post_mortems")
        documentation = DocumentationReviewOperator(task_id="documentation_review")

    choose = dagkit.weekly_theme_branch({"monday": ["monday.gate", cost_review.task_id, capacity_review.task_id],
                                         "tuesday": [patch_review.task_id, dependency_review.task_id,
                                                     certificate_review.task_id],
                                         "wednesday": ["wednesday.gate"],
                                         "thursday": [t.task_id for t in restore_tests] + [alert_review.task_id,
                                                                                       housekeeping.task_id],
                                         "friday": [health_report.task_id, post_mortems.task_id,
                                                    documentation.task_id]})
    choose >> [monday, tuesday, wednesday, thursday, friday] >> summary
