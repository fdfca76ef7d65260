"""PostgreSQL: databases, the safety budget, thresholds."""

from __future__ import annotations

from pydantic import Field

from maintenance.policy.base import _Strict


class PostgresDatabase(_Strict):
    conn_id: str = Field(min_length=1)
    schemas: list[str] = Field(["public"], min_length=1)
    pool: str | None = Field(None, description="Airflow pool capping this database's load; default pg_<conn_id>")

    @property
    def pool_name(self) -> str:
        return self.pool or f"pg_{self.conn_id}"


MEMORY = r"^[1-9][0-9]*(kB|MB|GB)$"  # PostgreSQL's memory units


class PostgresSafety(_Strict):
    """Limits every statement runs under."""

    lock_timeout_ms: int = Field(500, gt=0)
    # One actor per table: a second one (a backfill beside a scheduled run) waits this long for
    # the first to finish with the table, then leaves it alone, naming the holder.
    target_lock_wait_s: float = Field(300, ge=0)
    lock_retries: int = Field(5, ge=0)
    lock_retry_backoff_s: float = Field(2.0, ge=0)
    statement_timeout_s: int = Field(3600, gt=0)
    # VACUUM and ANALYZE are paced (below), so on a large table they run long by design.
    vacuum_timeout_s: int = Field(14400, gt=0)
    # Each heavy step is one instance of a mapped task: Airflow maps at most
    # [core] max_map_length (1024) instances, and the day's ANALYZEs take one more.
    max_relations_per_run: int = Field(50, gt=0, le=1000)
    maintenance_work_mem: str = Field("256MB", pattern=MEMORY)
    work_mem: str = Field("64MB", pattern=MEMORY, description="keeps a batch's moved rows in memory, not temp files")
    max_parallel_maintenance_workers: int = Field(0, ge=0)
    # PostgreSQL's own bounds for these settings; autovacuum's defaults. VACUUM FULL ignores them.
    vacuum_cost_delay_ms: float = Field(2.0, ge=0, le=100)
    vacuum_cost_limit: int = Field(200, ge=1, le=10000)


class UnusedIndexRules(_Strict):
    """When the weekly review calls a (non-unique, valid) index unused; an index never scanned
    since statistics were reset always is."""
    writes_per_scan: int = Field(10_000, ge=1, description="...this many table writes per scan")
    max_scans_for_writes: int = Field(50, ge=1, description="...with fewer scans than this")
    large_bytes: int = Field(100 * 2**20, ge=0, description="an index this large...")
    max_scans_for_large: int = Field(100, ge=1, description="...with fewer scans than this")


class PostgresThresholds(_Strict):
    vacuum_dead_ratio: float = Field(0.2, ge=0, le=1)
    reindex_bloat_ratio: float = Field(0.4, ge=0, le=1)
    table_debloat_ratio: float = Field(0.3, ge=0, le=1)
    min_relation_bytes: int = Field(1_048_576, ge=0)
    stats_max_age_hours: float = Field(72, gt=0)
    stats_max_modified_fraction: float = Field(0.1, ge=0, le=1)
    toast_heavy_fraction: float = Field(0.5, ge=0)
    exact_measure_top_n: int = Field(10, ge=0)
    slow_query_mean_ms: float = Field(1000, gt=0)
    unused_index: UnusedIndexRules = UnusedIndexRules()


class PostgresBatching(_Strict):
    """How per-table work is cut into task instances. Cheap steps (ANALYZE, and VACUUM (ANALYZE)
    of tables under ``small_vacuum_bytes``) go together, ``tables_per_step`` to a task instance:
    an Airflow task costs seconds to start, an ANALYZE of a small table milliseconds. Heavy steps
    (pg_repack, VACUUM FULL, REINDEX, a VACUUM of a large table) keep one task instance each,
    with their own log and retries."""

    tables_per_step: int = Field(500, ge=1, le=10_000)
    small_vacuum_bytes: int = Field(256 * 2**20, ge=0)


class Postgres(_Strict):
    databases: list[PostgresDatabase] = [PostgresDatabase(conn_id="platform_db")]
    safety: PostgresSafety = PostgresSafety()
    thresholds: PostgresThresholds = PostgresThresholds()
    batching: PostgresBatching = PostgresBatching()
    vacuum_full_allowed: list[str] = Field([], description="schema.table allowed VACUUM FULL in the window")
    vacuum_analyze_tables: list[str] = Field(
        ["public.career_selections", "public.learning_sessions", "public.pathiq_metrics"],
        description="vacuumed daily whatever their dead-tuple ratio (procedures 3.1)")

    def database(self, conn_id: str) -> PostgresDatabase:
        """The database behind ``conn_id``; one the policy does not name is maintained with the
        defaults (schema ``public``, no pool)."""
        return next((d for d in self.databases if d.conn_id == conn_id), None) or PostgresDatabase(conn_id=conn_id)
