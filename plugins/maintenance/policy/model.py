"""The maintenance policy as typed, validated models.

Every model forbids unknown keys, so a typo in the YAML is an error that names
the field rather than a setting silently ignored. Times of day are local to the
policy's timezone; calendar dates in blackouts are month-day pairs that recur
every year.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _parse_time_of_day(value: object) -> object:
    if isinstance(value, str):
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            raise ValueError(f"expected a time of day as HH:MM, got {value!r}")
        return time(int(match[1]), int(match[2]))
    if isinstance(value, int):
        # YAML 1.1 reads an unquoted 02:00 as the sexagesimal number 120.
        raise ValueError(f"quote times of day (\"HH:MM\"); YAML read this one as the number {value}")
    return value


TimeOfDay = Annotated[time, BeforeValidator(_parse_time_of_day)]


class MonthDay(_Strict):
    """A day of the year that recurs: month and day, written ``MM-DD``."""

    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: object) -> object:
        if isinstance(value, str):
            match = _MONTH_DAY.match(value.strip())
            if not match:
                raise ValueError(f"expected a month and day as MM-DD, got {value!r}")
            return {"month": int(match[1]), "day": int(match[2])}
        return value

    @model_validator(mode="after")
    def _real_day(self) -> MonthDay:
        if self.day > _DAYS_IN_MONTH[self.month - 1]:
            raise ValueError(f"{self.month:02d}-{self.day:02d} is not a day of the year")
        return self

    def in_year(self, year: int) -> date:
        """This day in ``year``; 02-29 is read as 02-28 in common years."""
        try:
            return date(year, self.month, self.day)
        except ValueError:
            return date(year, 2, 28)

    def __str__(self) -> str:
        return f"{self.month:02d}-{self.day:02d}"

    def key(self) -> tuple[int, int]:
        return (self.month, self.day)


class PlannedWindow(_Strict):
    """The monthly planned maintenance window (the procedures: Sunday 02:00-06:00)."""

    weekday: Literal[WEEKDAYS] = "sunday"  # type: ignore[valid-type]
    week_of_month: int = Field(1, description="1-4 for the n-th such weekday, -1 for the last")
    start: TimeOfDay = time(2, 0)
    end: TimeOfDay = time(6, 0)
    notice_days: int = Field(7, ge=0)

    @field_validator("week_of_month")
    @classmethod
    def _week(cls, value: int) -> int:
        if value not in (1, 2, 3, 4, -1):
            raise ValueError(f"must be 1, 2, 3, 4 or -1 (the last), got {value}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> PlannedWindow:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end:%H:%M}) must be after start ({self.start:%H:%M})")
        return self

    @property
    def cron(self) -> str:
        """Cron for the window's start, for a CronTriggerTimetable (``#n`` = n-th weekday)."""
        dow = (WEEKDAYS.index(self.weekday) + 1) % 7
        nth = "L" if self.week_of_month == -1 else f"#{self.week_of_month}"
        return f"{self.start.minute} {self.start.hour} * * {dow}{nth}"


class Blackout(_Strict):
    """A period that recurs every year, inclusive of both days; one that runs over the new year
    says so (``wraps_year``), so a slip such as 09-15..08-15 is not read as ten months."""

    name: str = Field(min_length=1)
    start: MonthDay
    end: MonthDay
    reason: str = ""
    wraps_year: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Blackout:
        backwards = self.end.key() < self.start.key()
        if backwards and not self.wraps_year:
            raise ValueError(f"end ({self.end}) is before start ({self.start}): if the blackout runs over the new "
                             "year, say so with wraps_year: true")
        if self.wraps_year and not backwards:
            raise ValueError(f"wraps_year is set but {self.start}..{self.end} does not cross the new year")
        return self

    def days(self) -> set[tuple[int, int]]:
        """Its days, as (month, day), in a leap year."""
        day, found = date(2024, 1, 1), set()
        while day.year == 2024:
            key = (day.month, day.day)
            inside = self.start.key() <= key <= self.end.key() if not self.wraps_year else (
                key >= self.start.key() or key <= self.end.key())
            if inside:
                found.add(key)
            day += timedelta(days=1)
        return found


class Freeze(_Strict):
    """A one-off freeze between two dates, inclusive of both."""

    name: str = Field(min_length=1)
    start: date
    end: date
    reason: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Freeze:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self


class LoadProbe(_Strict):
    """How the number of active users is measured: one SQL query returning one number."""

    conn_id: str = "platform_db"
    sql: str = Field(min_length=1)


class LoadRule(_Strict):
    active_users_threshold: int = Field(50_000, ge=0)
    recheck_after_minutes: float = Field(120, gt=0)
    give_up_after_minutes: float = Field(480, gt=0)
    probe: LoadProbe

    @property
    def recheck_after(self) -> timedelta:
        return timedelta(minutes=self.recheck_after_minutes)

    @property
    def give_up_after(self) -> timedelta:
        return timedelta(minutes=self.give_up_after_minutes)


class Decision(_Strict):
    """The procedures' decision rules (section 1.2)."""

    max_affected_users_outside_window: int = Field(1_000, ge=0)
    load: LoadRule
    freeze_variable: str = Field("maintenance_freeze", min_length=1)
    # A scheduled run queued this long after its time is a catch-up (the DAG was unpaused, or
    # the scheduler was down): its non-critical work is skipped, not applied unannounced.
    catch_up_after_minutes: float = Field(60, gt=0)


class Connections(_Strict):
    """Airflow connection ids of the systems maintained."""

    platform_postgres: str = "platform_db"
    ledger: str = "platform_db"
    redis: str = "platform_redis"
    aws: str = "platform_aws"
    slack: str = "slack_oncall"
    kubernetes: str = "kubernetes_default"


class Notifications(_Strict):
    oncall_channel: str = "#ops-oncall"
    summary_channel: str = "#ops-maintenance"
    base_url: str = Field("http://localhost:8080", description="Airflow UI address, for links")
    # A problem on-call was paged about pages once; while it stays open, a reminder goes out
    # at this interval, not on every run that sees it again.
    page_reminder_hours: float = Field(72, gt=0)

    def run_url(self, dag_id: str, run_id: str) -> str:
        from urllib.parse import quote

        return f"{self.base_url.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"


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


class Postgres(_Strict):
    databases: list[PostgresDatabase] = [PostgresDatabase(conn_id="platform_db")]
    safety: PostgresSafety = PostgresSafety()
    thresholds: PostgresThresholds = PostgresThresholds()
    vacuum_full_allowed: list[str] = Field([], description="schema.table allowed VACUUM FULL in the window")
    vacuum_analyze_tables: list[str] = Field(
        ["public.career_selections", "public.learning_sessions", "public.pathiq_metrics"],
        description="vacuumed daily whatever their dead-tuple ratio (procedures 3.1)")

    def database(self, conn_id: str) -> PostgresDatabase:
        """The database behind ``conn_id``; one the policy does not name is maintained with the
        defaults (schema ``public``, no pool)."""
        return next((d for d in self.databases if d.conn_id == conn_id), None) or PostgresDatabase(conn_id=conn_id)


class DisposablePrefix(_Strict):
    prefix: str = Field(min_length=1, description="literal: glob characters in it match only themselves")
    stale_idle_seconds: int = Field(gt=0, description="idle at least this long (OBJECT IDLETIME) to be deleted")


class DefaultTtl(_Strict):
    pattern: str = Field(min_length=1, description="a SCAN MATCH pattern, e.g. api:content:*")
    ttl_seconds: int = Field(gt=0)

    @field_validator("pattern")
    @classmethod
    def _starts_with_a_namespace(cls, value: str) -> str:
        # A pattern that starts with a glob reaches into every namespace ("*" is the whole keyspace).
        if value[0] in "*?[":
            raise ValueError(f"{value!r} starts with a glob and would match keys of every namespace; start it "
                             "with the literal namespace it is for, e.g. api:content:*")
        return value


class RedisBigKeys(_Strict):
    top_n: int = Field(20, gt=0)
    batch: int = Field(100, gt=0, le=10_000)
    pause_ms: float = Field(0, ge=0)
    namespace_separator: str = Field(":", min_length=1)
    time_budget_s: float = Field(600, gt=0, description="then stop and resume from the saved cursor next run")


class RedisTtlAudit(_Strict):
    sample: int = Field(1000, gt=0)
    max_no_ttl_fraction: float = Field(0.1, ge=0, le=1)
    default_ttls: list[DefaultTtl] = []
    max_keys_per_run: int = Field(100_000, gt=0)


class RedisSettings(_Strict):
    conn_id: str = "platform_redis"
    lock_wait_seconds: float = Field(300, ge=0, description="wait for another actor's lock on the cache, then skip")
    fragmentation_ratio: float = Field(1.5, gt=1)
    fragmentation_min_waste_mb: float = Field(64, ge=0)
    allow_active_defrag: bool = False
    memory_high_fraction: float = Field(0.8, gt=0, le=1)
    disposable: list[DisposablePrefix] = []
    max_relief_deletes: int = Field(100_000, gt=0)
    big_keys: RedisBigKeys = RedisBigKeys()
    ttl_audit: RedisTtlAudit = RedisTtlAudit()
    max_rdb_age_hours: float = Field(26, gt=0)
    min_replicas: int = Field(0, ge=0)
    max_replica_lag_bytes: int = Field(1_048_576, ge=0)
    prewarm_base_url: str = ""
    prewarm_paths: list[str] = ["/api/careers/pool", "/api/content/popular", "/api/dashboard/student"]
    prewarm_timeout_s: float = Field(5, gt=0)


class LedgerSettings(_Strict):
    schema_name: str = Field("maintenance", min_length=1, max_length=63)
    spool_dir: str | None = Field(None, description="where critical tasks keep their records while the ledger "
                                                     "is down; default $AIRFLOW_HOME/maintenance-ledger-spool")


class KpiTargets(_Strict):
    """The procedures' success criteria; monthly figures are scaled to a report's period."""

    uptime_pct: float = Field(99.9, gt=0, le=100)
    planned_downtime_minutes_per_month: float = Field(240, ge=0)
    unplanned_downtime_minutes_per_month: float = Field(30, ge=0)
    mttr_minutes: float = Field(30, gt=0)


class Reports(_Strict):
    bucket: str = Field("pathfinity-maintenance", min_length=3)
    prefix: str = "reports/"
    kpi_targets: KpiTargets = KpiTargets()


class SmokeQuery(_Strict):
    """A query the disaster-recovery drill runs on the restored copy: one row, first column a number."""

    name: str = Field(min_length=1)
    sql: str = Field(min_length=1)
    at_least: float = Field(0, description="the drill fails when the number is below this")


class Backups(_Strict):
    """PostgreSQL backups (procedures 2.1 verification, 2.2 restore test and DR drill)."""

    bucket: str = Field("pathfinity-backups", min_length=3)
    prefix: str = Field("postgres/", description="dumps live under <prefix><conn_id>/<date>/")
    produce: bool = Field(True, description="make a pg_dump backup daily (01:00) for each database")
    compression: int = Field(6, ge=0, le=9, description="pg_dump -Z level (custom format)")
    max_age_hours: float = Field(26, gt=0)
    max_size_drop_fraction: float = Field(0.2, ge=0, le=1, description="newest vs previous backup size")
    restore_conn_id: str = Field("platform_db", min_length=1,
                                 description="server the restore test creates its scratch database on")
    restore_jobs: int = Field(2, ge=1, le=32, description="pg_restore -j and parallel checks")
    rto_minutes: float = Field(60, gt=0, description="recovery time objective the DR drill is timed against")
    smoke_queries: list[SmokeQuery] = []
    pg_bin_dir: str | None = Field(None, description="pg_dump/pg_restore folder; default: matched to the server")


_QUALIFIED = re.compile(r"^[^.]+\.[^.]+$")


def _qualified_name(value: str) -> str:
    if not _QUALIFIED.match(value or ""):
        raise ValueError(f"expected schema.table, got {value!r}")
    return value


QualifiedName = Annotated[str, BeforeValidator(lambda v: _qualified_name(v) if isinstance(v, str) else v)]


class ArchiveExport(_Strict):
    """A copy of the archive in S3 (connections.aws), one object per calendar month: gzip'd CSV
    with a header, and a manifest beside it (rows, SHA-256, bytes) written only once the object
    has been read back and checked."""

    bucket: str = Field(min_length=3)
    prefix: str = Field("archive/", description="s3://bucket/prefix<schema.table>/<YYYY-MM>.csv.gz")


class ArchiveChild(_Strict):
    """A table whose rows reference the source: its rows go to their own archive table in the
    same transaction as the source rows they reference."""

    table: QualifiedName
    archive: QualifiedName | None = Field(None, description="default: <table>_archive in the same schema")

    @property
    def archive_name(self) -> str:
        return self.archive or f"{self.table}_archive"


class ArchiveTable(_Strict):
    """One table whose old rows move to an archive table (procedures 2.3, database reorganization)."""

    conn_id: str = Field("platform_db", min_length=1)
    source: QualifiedName
    archive: QualifiedName | None = Field(None, description="default: <source>_archive in the same schema")
    time_column: str = Field(min_length=1)
    age_months: int = Field(6, ge=1, le=120)
    export: ArchiveExport | None = Field(None, description="also copy the archive's full months to S3")
    # A foreign key of another table with ON DELETE CASCADE, SET NULL or SET DEFAULT would delete
    # or rewrite that table's rows as source rows leave: the move refuses the source unless the
    # child table is named here, acknowledging exactly that.
    cascade_acknowledged: list[QualifiedName] = Field(
        [], description="child tables whose cascading foreign keys may act on the children of archived rows")
    # Or the children go along: archived with their parents, in the same transaction, verified alike.
    children: list[ArchiveChild] = Field([], description="tables whose rows are archived with the rows they reference")
    # User triggers and rules on DELETE of the source would fire once per archived row.
    delete_triggers: Literal["refuse", "fire"] = Field(
        "refuse", description="refuse: the move refuses a source with delete triggers or rules; fire: they fire")

    @property
    def archive_name(self) -> str:
        return self.archive or f"{self.source}_archive"

    @model_validator(mode="after")
    def _archive_is_not_the_source(self) -> ArchiveTable:
        if self.archive_name.lower() == self.source.lower():
            raise ValueError(f"archive: {self.archive_name} is the source itself")
        names = [self.source.lower(), self.archive_name.lower()]
        for i, child in enumerate(self.children):
            if child.table.lower() in names or child.archive_name.lower() in names:
                raise ValueError(f"children[{i}]: {child.table} -> {child.archive_name} reuses a table already "
                                 "named for this source")
            names += [child.table.lower(), child.archive_name.lower()]
        acknowledged = {t.lower() for t in self.cascade_acknowledged} & {c.table.lower() for c in self.children}
        if acknowledged:
            raise ValueError(f"{', '.join(sorted(acknowledged))}: both in children (archived along) and in "
                             "cascade_acknowledged (left to the foreign key); name it in one")
        return self


class ArchiveBatching(_Strict):
    """Batch sizing: each batch is one transaction; its size adapts so it holds its row locks
    about ``target_ms``."""

    initial_rows: int = Field(2000, ge=1)
    min_rows: int = Field(100, ge=1)
    max_rows: int = Field(50_000, ge=1)
    target_ms: float = Field(200, gt=0)
    max_batch_ms: float = Field(500, gt=0, description="a batch still running then is cancelled and retried smaller")
    pause_ms: float = Field(0, ge=0, description="a pause after each batch, leaving the database to the platform")

    @model_validator(mode="after")
    def _ordered(self) -> ArchiveBatching:
        if not self.min_rows <= self.initial_rows <= self.max_rows:
            raise ValueError(f"need min_rows <= initial_rows <= max_rows, got {self.min_rows}, "
                             f"{self.initial_rows}, {self.max_rows}")
        if self.target_ms >= self.max_batch_ms:
            raise ValueError(f"need target_ms < max_batch_ms, got {self.target_ms} and {self.max_batch_ms}")
        return self


class Partitioning(_Strict):
    """The monthly "partition large tables" task."""

    min_table_bytes: int = Field(10 * 2**30, ge=0, description="unpartitioned tables above this get a proposal")
    create_ahead_months: int = Field(3, ge=0, le=24, description="monthly partitions created this far ahead")
    rewrite_mb_per_second: float = Field(100, gt=0, description="for the proposal's cost estimate")


class Archive(_Strict):
    partitioning: Partitioning = Partitioning()
    tables: list[ArchiveTable] = [
        ArchiveTable(source="public.learning_sessions", time_column="created_at"),
        ArchiveTable(source="public.pathiq_metrics", time_column="timestamp"),
    ]
    batching: ArchiveBatching = ArchiveBatching()
    max_rows_per_run: int = Field(20_000_000, gt=0, description="a larger move is refused at the plan")
    time_budget_minutes: float = Field(180, gt=0, description="then stop; the next run resumes")
    load_check_seconds: float = Field(30, gt=0, description="how often the load probe is consulted")
    expected_rows_per_second: float = Field(20_000, gt=0,
                                            description="the dry run's guess until a move is measured")

    @model_validator(mode="after")
    def _archives_apart_from_sources(self) -> Archive:
        sources = {(t.conn_id, t.source.lower()): i for i, t in enumerate(self.tables)}
        if len(sources) < len(self.tables):
            raise ValueError("tables: a source is listed twice")
        for i, table in enumerate(self.tables):
            other = sources.get((table.conn_id, table.archive_name.lower()))
            if other is not None:
                raise ValueError(f"tables[{i}].archive: {table.archive_name} is the source of tables[{other}]; "
                                 "archiving into it would move rows back into a table being archived")
        return self


class LogFolder(_Strict):
    """A folder of application logs rotated daily (procedures 2.1, 00:00)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="the log's name in S3 keys")
    path: str = Field(min_length=1)
    patterns: list[str] = Field(["*.log"], min_length=1)
    method: Literal["copytruncate", "rename"] = "copytruncate"
    pidfile: str | None = Field(None, description="rename: the writer's pid file, signalled to reopen")
    reopen_signal: Literal["HUP", "USR1", "USR2"] = "HUP"
    min_bytes: int = Field(1, ge=0, description="smaller active logs are not rotated")
    retention_days: float = Field(7, ge=0, description="verified copies kept locally this long")
    retention_mb: float = Field(1024, ge=0, description="...and within this total size")

    @model_validator(mode="after")
    def _rename_needs_pidfile(self) -> LogFolder:
        if self.method == "rename" and not self.pidfile:
            raise ValueError("method 'rename' needs a pidfile: the writer must be told to reopen its log")
        return self


class Logs(_Strict):
    host: str | None = Field(None, description="the host's name in S3 keys; default: this machine's")
    bucket: str = Field("pathfinity-logs", min_length=3)
    prefix: str = "logs/"
    settle_seconds: float = Field(2, ge=0, description="a rotated file still growing this long is left for later")
    folders: list[LogFolder] = []
    lock_wait_seconds: float = Field(300, ge=0, description="wait for another actor's lock on a log folder or a bucket's lifecycle rules, then skip")


class LifecycleBucket(_Strict):
    name: str = Field(min_length=3)
    logs_prefix: str | None = Field("logs/", description="objects under it expire; None: no expiry rule")


class S3Lifecycle(_Strict):
    """S3 lifecycle rules the procedures set (5.2), merged into each bucket's own rules."""

    buckets: list[LifecycleBucket] = []
    logs_expire_days: int = Field(90, gt=0)
    infrequent_access_after_days: int = Field(30, ge=30, description="S3 allows STANDARD_IA after 30 days")
    abort_multipart_after_days: int = Field(7, gt=0)
    noncurrent_version_expire_days: int = Field(30, gt=0, description="versioned buckets: old versions")


class Control(_Strict):
    """A compliance control evaluated from the ledger."""

    name: str = Field(min_length=1)
    kind: Literal["task_succeeded", "findings_closed", "log_retention"]
    task_pattern: str | None = Field(None, description="task_succeeded: a SQL LIKE pattern of task ids")
    within_days: float = Field(8, gt=0)
    days: int = Field(90, gt=0, description="log_retention: logs kept at least this long")

    @model_validator(mode="after")
    def _task(self) -> Control:
        if self.kind == "task_succeeded" and not self.task_pattern:
            raise ValueError("kind task_succeeded needs task_pattern (e.g. '%verify_backup%')")
        return self


class Certificates(_Strict):
    endpoints: list[str] = Field([], description="host:port of TLS endpoints")
    warn_days: float = Field(30, gt=0)
    critical_days: float = Field(7, gt=0)
    timeout_s: float = Field(10, gt=0)

    @model_validator(mode="after")
    def _bands(self) -> Certificates:
        if self.critical_days > self.warn_days:
            raise ValueError(f"critical_days ({self.critical_days:g}) is above warn_days ({self.warn_days:g}): "
                             "a certificate would page before it warns")
        return self


class Security(_Strict):
    lock_files: list[str] = Field([], description="npm package-lock.json and Python requirement/lock files")
    osv_url: str = "https://api.osv.dev"
    pypi_url: str = "https://pypi.org"
    npm_url: str = "https://registry.npmjs.org"
    http_timeout_s: float = Field(30, gt=0)
    page_severities: list[Literal["critical", "high", "medium", "low"]] = ["critical"]
    certificates: Certificates = Certificates()
    s3_buckets: list[str] = Field([], description="buckets the monthly posture audit checks")
    backup_buckets: list[str] = Field(["pathfinity-backups"], description="...which must also keep versions")
    controls: list[Control] = []


class PodCleanup(_Strict):
    min_age_minutes: float = Field(60, ge=0)
    max_per_namespace: int = Field(200, gt=0)
    max_per_run: int = Field(1000, gt=0)


class MemoryRestarts(_Strict):
    threshold: float = Field(0.9, gt=0, le=1, description="memory use over this share of the limit")
    max_per_run: int = Field(3, ge=0)


class NodeMaintenance(_Strict):
    """Which nodes need maintenance, and how one is taken out, maintained and brought back."""

    reboot_marker: str = Field("pathfinity.com/reboot-required",
                               description="a node label or annotation with this key marks it")
    conditions: list[str] = Field([], description="node condition types that, when True, mark it")
    min_kubelet_version: str | None = Field(None, description="older kubelets mark the node, e.g. v1.29.0")
    drain_timeout_minutes: float = Field(15, gt=0)
    eviction_retry_seconds: float = Field(5, gt=0)
    action_timeout_minutes: float = Field(30, gt=0, description="wait for the external agent's reboot")
    ready_timeout_minutes: float = Field(15, gt=0)
    uncordon_on_failure: bool = True
    max_nodes_per_run: int = Field(1, gt=0, description="maintained one after another, never two at once")
    min_ready_nodes: int = Field(1, ge=0, description="other Ready, schedulable nodes a drain must leave")
    lease_namespace: str = Field("kube-system", min_length=1, description="where the node Lease lives")
    lease_wait_seconds: float = Field(300, ge=0, description="wait for another actor's node Lease, then skip")
    max_pending_pods: int = Field(0, ge=0, description="cluster health: pods Pending longer than...")
    pending_grace_minutes: float = Field(5, ge=0)


class Kubernetes(_Strict):
    conn_id: str = "kubernetes_default"
    min_kernel_version: str | None = Field(None, description="Tuesday's patch review: older node kernels")
    namespaces: list[str] = Field([], description="empty: every namespace but the excluded ones")
    excluded_namespaces: list[str] = ["kube-system"]
    pod_cleanup: PodCleanup = PodCleanup()
    memory_restarts: MemoryRestarts = MemoryRestarts()
    nodes: NodeMaintenance = NodeMaintenance()
    request_use_ratio: float = Field(0.3, gt=0, le=1, description="hygiene: use below this share of requests")


class Monitoring(_Strict):
    """Thursday's monitoring threshold review (procedures 2.2) over Prometheus's alerting rules."""

    prometheus_url: str = Field("", description="empty: no review")
    lookback_days: float = Field(7, gt=0)
    noisy_firing_fraction: float = Field(0.05, gt=0, le=1, description="firing more of the time: too tight")
    http_timeout_s: float = Field(30, gt=0)


class UpdateReview(_Strict):
    """The monthly update review of EC2 and RDS (procedures 2.3, 5.2), through connections.aws."""

    enabled: bool = Field(True, description="off: the review reports that it is off")
    max_ami_age_days: float = Field(90, gt=0, description="an instance's image older than this: rebuild")
    stopped_unused_days: float = Field(14, gt=0, description="an instance stopped longer looks unused")
    rds_min_engine_versions: dict[str, str] = Field({}, description="engine -> oldest version allowed")

    @field_validator("rds_min_engine_versions")
    @classmethod
    def _versions(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [f"{engine}: {version!r}" for engine, version in value.items()
               if not re.fullmatch(r"\d+(\.\d+)*", version)]
        if bad:
            raise ValueError(f"versions must be numbers separated by dots, got {', '.join(bad)}")
        return value


class DocFolder(_Strict):
    path: str = Field(min_length=1, description="a folder on the worker, e.g. a checkout of the docs repository")
    patterns: list[str] = Field(["*.md"], min_length=1)


class Documentation(_Strict):
    """Friday's documentation review (procedures 2.2, 8.1)."""

    folders: list[DocFolder] = []
    runbooks: DocFolder | None = Field(None, description="recent incidents must be mentioned in one of these")
    stale_after_days: float = Field(180, gt=0)
    incident_lookback_days: float = Field(30, gt=0)


class StudentsQuery(_Strict):
    """Distinct students per day on the platform's database: rows of (day, students), for the
    period ``%(start)s`` to ``%(end)s`` (timestamps), days counted in ``%(timezone)s``."""

    conn_id: str = Field("platform_db", min_length=1)
    sql: str = Field(
        "SELECT (created_at AT TIME ZONE %(timezone)s)::date AS day, count(DISTINCT student_id) "
        "FROM learning_sessions WHERE created_at >= %(start)s AND created_at < %(end)s GROUP BY 1", min_length=1)


class Costs(_Strict):
    """Monday's cost review (procedures 2.2, 5.2): AWS Cost Explorer against students served."""

    enabled: bool = Field(True, description="off: the review reports that it is off")
    target_per_student_per_day: float = Field(0.05, gt=0, description="the procedures' goal, in the currency")
    review_days: int = Field(7, ge=1, le=90, description="compared with the same number of days before")
    growth_warning_fraction: float = Field(0.2, gt=0, description="a rise over the previous period above this")
    metric: Literal["UnblendedCost", "BlendedCost", "AmortizedCost", "NetUnblendedCost", "NetAmortizedCost"] = (
        "UnblendedCost")
    top_services: int = Field(10, ge=1)
    students: StudentsQuery = StudentsQuery()


class Policy(_Strict):
    version: Literal[1] = 1
    timezone: str = "America/New_York"
    planned_window: PlannedWindow = PlannedWindow()
    blackouts: list[Blackout] = []
    freezes: list[Freeze] = []
    decision: Decision
    connections: Connections = Connections()
    notifications: Notifications = Notifications()
    ledger: LedgerSettings = LedgerSettings()
    postgres: Postgres = Postgres()
    redis: RedisSettings = RedisSettings()
    reports: Reports = Reports()
    backups: Backups = Backups()
    archive: Archive = Archive()
    logs: Logs = Logs()
    s3_lifecycle: S3Lifecycle = S3Lifecycle()
    security: Security = Security()
    kubernetes: Kubernetes = Kubernetes()
    monitoring: Monitoring = Monitoring()
    costs: Costs = Costs()
    documentation: Documentation = Documentation()
    update_review: UpdateReview = UpdateReview()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as America/New_York)") from None
        # EST, EST5EDT, Etc/GMT+5: fixed offsets or POSIX rules, not a place's clock. The procedures'
        # times are New York's, daylight saving included.
        if value != "UTC" and ("/" not in value or value.startswith("Etc/")):
            raise ValueError(f"{value!r} is an abbreviation or a fixed offset, not a place's clock: use the "
                             "IANA name of the place (America/New_York keeps EST in winter and EDT in summer)")
        return value

    @field_validator("blackouts", "freezes")
    @classmethod
    def _unique_names(cls, value: list) -> list:
        names = [item.name for item in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"names must be unique, repeated: {', '.join(dupes)}")
        return value

    @field_validator("blackouts")
    @classmethod
    def _apart(cls, value: list[Blackout]) -> list[Blackout]:
        for i, one in enumerate(value):
            for other in value[i + 1:]:
                shared = sorted(one.days() & other.days())
                if shared:
                    first = f"{shared[0][0]:02d}-{shared[0][1]:02d}"
                    raise ValueError(f"{one.name} and {other.name} overlap ({len(shared)} days from {first}): "
                                     "make them one blackout, or move one's end")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
