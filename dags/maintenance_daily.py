"""Daily maintenance (procedures 2.1): logs 00:00, cache 02:00, statistics 03:00,
backup verification 04:00 (critical), security scan 05:00 (critical).

Built so far: 00:00 log rotation (rotate, compress, archive to S3 verified, clean up
local copies past retention, check), behind the gate; 01:00 backup (pg_dump with a
manifest, when the policy's `backups.produce` is on; critical); 02:00 cache
optimization (Redis memory health, TTL audit, persistence and replication checks,
metrics, pre-warm); 03:00 database statistics (ANALYZE every table, VACUUM (ANALYZE)
where dead tuples pass the policy's threshold and for the daily vacuum list, refresh
materialized views), behind the gate; 04:00 backup verification (critical, not gated:
it runs in a blackout too); 05:00 security scan (vulnerable packages of the lock files
from the OSV database, certificates close to expiry; critical, not gated); the calendar
review (the next planned window, months ahead left without one, window-only work waiting
longer than the policy allows: paged; read-only); the next planned window's notice, once,
seven days ahead, to the stakeholders' channel."""

from airflow.sdk import chain
from maintenance import dagkit
from maintenance.backups.operators import BackupOperator, BackupVerificationOperator
from maintenance.change.operators import CalendarReviewOperator, WindowNoticeOperator
from maintenance.logs.operators import LogRotationOperator
from maintenance.postgres.operators import PostgresStatisticsOperator
from maintenance.redis.operators import RedisCacheOptimizationOperator
from maintenance.security.operators import SecurityScanOperator

with dagkit.maintenance_dag(
    "maintenance_daily",
    cron="0 0 * * *",
    title="Daily maintenance",
    doc=__doc__,
    destructive=False,
    tags=["daily"],
    # The critical work (backup verification 04:00, security scan 05:00) done by 07:00.
    deadline_hours=7,
    deadline_promise="backups verified and the security scan done by 07:00",
    tables=dagkit.tables_param(),
) as dag:
    summary = dagkit.run_summary()

    # 00:00 log rotation: the run starts at midnight, so no wait.
    chain(dagkit.gate("gate_logs"), LogRotationOperator(task_id="log_rotation"), summary)

    # 01:00 backup, then 04:00 verification of the newest backup (both critical, never gated).
    at_0400 = dagkit.wait_until("at_0400", 4)
    verify = dagkit.per_database(BackupVerificationOperator, "verify_backup", pooled=False,
                                 trigger_rule="all_done")  # a failed backup is what verification reports
    if dagkit.policy().backups.produce:
        chain(dagkit.wait_until("at_0100", 1), dagkit.per_database(BackupOperator, "backup"), verify)
    chain(at_0400, verify, summary)

    # 02:00 cache optimization
    at_0200 = dagkit.wait_until("at_0200", 2)
    gate_cache = dagkit.gate("gate_cache")
    cache = RedisCacheOptimizationOperator(task_id="cache_optimization", pool=dagkit.REDIS_POOL)
    chain(at_0200, gate_cache, cache, summary)

    # 03:00 database statistics
    at_0300 = dagkit.wait_until("at_0300", 3)
    gate_statistics = dagkit.gate("gate_statistics")
    statistics = dagkit.per_table(PostgresStatisticsOperator, "db_statistics")
    chain(at_0300, gate_statistics, statistics.plans, statistics.steps, summary)

    # The planned windows ahead: months without one, window-only work waiting too long (read-only).
    chain(CalendarReviewOperator(task_id="calendar_review"), summary)
    # The next window's notice to the stakeholders, once, notice_days ahead (read-only planners),
    # then the Change Advisory Board's approval asked in the UI (maintenance_window_approval).
    notice = WindowNoticeOperator(task_id="window_notice")
    chain(notice, summary)
    if dagkit.policy().planned_window.approval:
        chain(notice, dagkit.request_window_approval(), summary)

    # 05:00 security scan (critical, never gated)
    chain(dagkit.wait_until("at_0500", 5), SecurityScanOperator(task_id="security_scan"), summary)
