"""Daily maintenance (procedures 2.1): logs 00:00, cache 02:00, statistics 03:00,
backup verification 04:00 (critical), security scan 05:00 (critical).

Built so far: 02:00 cache optimization (Redis memory health, TTL audit, persistence and
replication checks, metrics, pre-warm); 03:00 database statistics (ANALYZE every table, VACUUM (ANALYZE) where
dead tuples pass the policy's threshold and for the daily vacuum list, refresh
materialized views), behind the gate."""

from datetime import datetime

from airflow.sdk import DAG, chain
from maintenance import dagkit
from maintenance.postgres.operators import PostgresStatisticsOperator
from maintenance.redis.operators import RedisCacheOptimizationOperator

with DAG(
    dag_id="maintenance_daily",
    schedule=dagkit.timetable("0 0 * * *"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=dagkit.default_args(),
    params=dagkit.trigger_form(destructive=False, tables=dagkit.tables_param()),
    tags=["maintenance", "daily"],
    doc_md=dagkit.policy_doc("Daily maintenance", __doc__),
) as dag:
    summary = dagkit.run_summary()

    # 02:00 cache optimization
    at_0200 = dagkit.wait_until("at_0200", 2)
    gate_cache = dagkit.gate("gate_cache")
    cache = RedisCacheOptimizationOperator(task_id="cache_optimization", pool="redis_platform")
    chain(at_0200, gate_cache, cache, summary)

    # 03:00 database statistics
    at_0300 = dagkit.wait_until("at_0300", 3)
    gate_statistics = dagkit.gate("gate_statistics")
    statistics = dagkit.per_database(PostgresStatisticsOperator, "db_statistics")
    chain(at_0300, gate_statistics, statistics, summary)
