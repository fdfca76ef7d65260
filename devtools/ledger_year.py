"""A year of maintenance ledger, written straight into its tables: what a platform's ledger holds
after a year of daily, weekly and monthly runs (actions of every outcome, findings, metrics,
incidents). For the calendar page's browser test and its benchmark: the page must stay fast
with it."""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg import sql


def seed(conn, schema: str, *, end: datetime, days: int = 365, actions_per_day: int = 120) -> int:
    """Write ``days`` days of ledger up to ``end``; returns the number of actions written."""
    s = sql.Identifier(schema)
    start = end - timedelta(days=days)
    conn.execute(sql.SQL("""
        INSERT INTO {s}.actions (dag_id, task_id, run_id, try_number, seq, logical_date, system, target, action,
                                 outcome, rows_affected, started_at, duration_ms, dry_run)
        SELECT (ARRAY['maintenance_daily', 'maintenance_weekly', 'maintenance_monthly'])[1 + n %% 3],
               (ARRAY['vacuum_analyze', 'archive', 'redis_audit', 'reindex', 'log_archive'])[1 + n %% 5],
               'seeded__' || d::date, 1, n, d,
               (ARRAY['postgres', 'postgres', 'redis', 'postgres', 's3'])[1 + n %% 5],
               'platform_db:public.t' || (n %% 40),
               (ARRAY['vacuum', 'move_rows', 'expire_keys', 'reindex', 'upload'])[1 + n %% 5],
               CASE WHEN n %% 97 = 0 THEN 'failed' WHEN n %% 13 = 0 THEN 'skipped' ELSE 'applied' END,
               n * 10, d + make_interval(secs => n * 30), 50 + n %% 900, n %% 17 = 0
        FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 day', interval '1 day') AS d,
             generate_series(1, %s) AS n""").format(s=s), (start, end, actions_per_day))
    conn.execute(sql.SQL("""
        INSERT INTO {s}.findings (dag_id, task_id, run_id, check_name, target, severity, message, recorded_at)
        SELECT 'maintenance_daily', 'bloat_check', 'seeded__' || d::date, 'bloat', 'platform_db:public.t' || n,
               'warning', 'seeded finding', d
        FROM generate_series(%s::timestamptz, %s::timestamptz, interval '1 day') AS d,
             generate_series(1, 5) AS n""").format(s=s), (start, end))
    conn.execute(sql.SQL("""
        INSERT INTO {s}.metrics (dag_id, task_id, run_id, system, target, name, value, recorded_at)
        SELECT 'maintenance_daily', 'stats', 'seeded__' || d, 'postgres', 'platform_db:public.t' || n,
               'bloat_pct', (n * 7) %% 60, d
        FROM generate_series(%s::timestamptz, %s::timestamptz, interval '1 hour') AS d,
             generate_series(1, 3) AS n""").format(s=s), (start, end))
    conn.execute(sql.SQL("""
        INSERT INTO {s}.incidents (severity, summary, opened_at, resolved_at, outage, planned)
        SELECT 'sev2', 'seeded incident', d, d + interval '40 minutes', extract(doy FROM d)::int %% 2 = 0, false
        FROM generate_series(%s::timestamptz, %s::timestamptz, interval '9 days') AS d,
             generate_series(1, 1) AS n""").format(s=s), (start, end))
    conn.execute(sql.SQL("ANALYZE {s}.actions").format(s=s))
    return days * actions_per_day
