"""PostgreSQL maintenance actions: each one statement under the safety budget, then verified.

Identifiers are composed with ``psycopg.sql``. Every function takes an autocommit
connection (VACUUM and the CONCURRENTLY forms cannot run in a transaction) on which
``apply_session_limits`` has been called, and returns what it changed.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from maintenance.postgres.safety import (
    LockBudgetExceeded,
    NotGranted,
    Outcome,
    long_lock_holders,
    run_guarded,
    statement_timeout,
    tool_options,
    with_lock_budget,
)
from psycopg import sql


@dataclass
class Result:
    outcome: Outcome
    bytes_before: int
    bytes_after: int
    verified: str


def _size(conn, schema: str, name: str, total: bool = True) -> int:
    fn = "pg_total_relation_size" if total else "pg_relation_size"
    return conn.execute(sql.SQL("SELECT {}(%s::regclass)").format(sql.Identifier(fn)),
                        (sql.Identifier(schema, name).as_string(conn),)).fetchone()[0]


def _table_stats(conn, schema: str, name: str):
    return conn.execute(
        "SELECT n_dead_tup, greatest(last_analyze, last_autoanalyze), greatest(last_vacuum, last_autovacuum) "
        "FROM pg_stat_all_tables WHERE schemaname = %s AND relname = %s", (schema, name)).fetchone()


def analyze(conn, schema: str, name: str, safety) -> Result:
    size = _size(conn, schema, name)
    with statement_timeout(conn, safety.vacuum_timeout_s):  # paced: see PostgresSafety
        out = run_guarded(conn, sql.SQL("ANALYZE {}").format(sql.Identifier(schema, name)), safety)
    return Result(out, size, size, "statistics refreshed")


def vacuum_analyze(conn, schema: str, name: str, safety) -> Result:
    size = _size(conn, schema, name)
    dead_before = (_table_stats(conn, schema, name) or (0,))[0]
    with statement_timeout(conn, safety.vacuum_timeout_s):  # paced: see PostgresSafety
        out = run_guarded(conn, sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(schema, name)), safety)
    return Result(out, size, _size(conn, schema, name), f"dead tuples before: {dead_before}")


def reindex_concurrently(conn, schema: str, name: str, safety) -> Result:
    # A try killed mid-rebuild left an invalid copy: dropped first, or every retry would add one.
    drop_rebuild_leftovers(conn, schema, name)
    before = _size(conn, schema, name)
    statement = sql.SQL("REINDEX INDEX CONCURRENTLY {}").format(sql.Identifier(schema, name))
    try:
        out = run_guarded(conn, statement, safety, on_retry=lambda: drop_rebuild_leftovers(conn, schema, name))
    except LockBudgetExceeded:
        drop_rebuild_leftovers(conn, schema, name)
        raise
    valid = conn.execute(sql.SQL("SELECT indisvalid FROM pg_index WHERE indexrelid = %s::regclass"),
                         (sql.Identifier(schema, name).as_string(conn),)).fetchone()[0]
    if not valid:
        raise RuntimeError(f"{schema}.{name} is not valid after REINDEX CONCURRENTLY")
    return Result(out, before, _size(conn, schema, name), "index valid")


def drop_rebuild_leftovers(conn, schema: str, index: str) -> list[str]:
    """Drop the invalid copies a failed or killed REINDEX CONCURRENTLY of ``index`` left behind:
    invalid indexes of the same table named ``<index, maybe cut short>_ccnew[N]`` (killed before
    the swap) or ``_ccold[N]`` (killed after it) with the same definition. Refuses, naming the
    session, while a rebuild of that table is under way: its copy is not a leftover yet."""
    busy = conn.execute(
        "SELECT pid, command FROM pg_stat_progress_create_index WHERE relid = "
        "(SELECT indrelid FROM pg_index WHERE indexrelid = (format('%%I.%%I', %s::text, %s::text))::regclass) "
        "AND pid <> pg_backend_pid()", (schema, index)).fetchall()
    if busy:
        raise RuntimeError(f"{schema}.{index}: {busy[0][1]} of its table is under way in session {busy[0][0]}; "
                           "not touching its copies")
    leftovers = [r[0] for r in conn.execute("""
        SELECT c.relname FROM pg_index o
        JOIN pg_index i ON i.indrelid = o.indrelid AND i.indexrelid <> o.indexrelid AND NOT i.indisvalid
        JOIN pg_class c ON c.oid = i.indexrelid
        CROSS JOIN LATERAL (SELECT regexp_replace(c.relname, '_cc(new|old)[0-9]*$', '') AS base) AS b
        WHERE o.indexrelid = (format('%%I.%%I', %s::text, %s::text))::regclass
          AND c.relname ~ '_cc(new|old)[0-9]*$' AND starts_with(%s, b.base)
          AND i.indkey = o.indkey AND i.indclass = o.indclass AND i.indoption = o.indoption
          AND i.indisunique = o.indisunique
          AND pg_get_expr(i.indexprs, i.indrelid) IS NOT DISTINCT FROM pg_get_expr(o.indexprs, o.indrelid)
          AND pg_get_expr(i.indpred, i.indrelid) IS NOT DISTINCT FROM pg_get_expr(o.indpred, o.indrelid)""",
        (schema, index, index)).fetchall()]
    for leftover in leftovers:
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(schema, leftover)))
    return leftovers


def drop_invalid_index(conn, schema: str, name: str, safety) -> Result:
    before = _size(conn, schema, name)
    out = run_guarded(conn, sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
        sql.Identifier(schema, name)), safety)
    gone = conn.execute("SELECT to_regclass(%s) IS NULL",
                        (sql.Identifier(schema, name).as_string(conn),)).fetchone()[0]
    if not gone:
        raise RuntimeError(f"{schema}.{name} still exists after DROP INDEX CONCURRENTLY")
    return Result(out, before, 0, "dropped")


def vacuum_full(conn, schema: str, name: str, safety) -> Result:
    before = _size(conn, schema, name)
    out = run_guarded(conn, sql.SQL("VACUUM (FULL, ANALYZE) {}").format(sql.Identifier(schema, name)), safety,
                      exclusive_on=(schema, name))
    return Result(out, before, _size(conn, schema, name), "rewritten")


def pg_repack_available(conn) -> bool:
    return bool(shutil.which("pg_repack")) and conn.execute(
        "SELECT 1 FROM pg_extension WHERE extname = 'pg_repack'").fetchone() is not None


def repack(conn, schema: str, name: str, safety, conninfo: dict) -> Result:
    """Rebuild a table online with pg_repack (it holds an exclusive lock only briefly, to install
    its trigger and at the swap), under the policy's lock budget.

    pg_repack asks for that lock in a loop of its own (a ``statement_timeout`` growing from 0.1
    to 1 s a try; a ``lock_timeout`` of ours would end that loop in an error instead), and
    writers queue behind every try: so it is not started while a long transaction holds a lock
    on the table, and its own wait is the shortest it takes (``--wait-timeout`` 1 s). When it
    still gives up waiting it says so and exits 0, leaving the table as it was: the table's
    file changing is what proves the rebuild happened."""
    from maintenance.postgres.conninfo import libpq_env

    before = _size(conn, schema, name)
    filenode = _filenode(conn, schema, name)
    # pg_repack's own sessions copy the table and build its indexes: with the server's defaults
    # they would use parallel workers and take every core from the writers.
    env = libpq_env(conninfo)
    env["PGOPTIONS"] = " ".join(filter(None, [env.get("PGOPTIONS"), tool_options(safety)]))
    cmd = ["pg_repack", "--no-superuser-check", "--no-kill-backend", "--wait-timeout", "1",
           "--table", sql.Identifier(schema, name).as_string(conn)]

    def attempt():
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=safety.statement_timeout_s,
                              check=False)
        if done.returncode:
            raise RuntimeError(f"pg_repack failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}")
        if _filenode(conn, schema, name) == filenode:
            raise NotGranted("pg_repack did not get its lock in time and left the table as it was")

    _, out = with_lock_budget(attempt, safety, queue_check=lambda: long_lock_holders(
        conn, schema, name, safety.lock_timeout_ms))
    return Result(out, before, _size(conn, schema, name), "repacked")


def _filenode(conn, schema: str, name: str) -> int:
    return conn.execute("SELECT pg_relation_filenode(%s::regclass)",
                        (sql.Identifier(schema, name).as_string(conn),)).fetchone()[0]


def refresh_materialized_view(conn, schema: str, name: str, safety) -> Result:
    """REFRESH, CONCURRENTLY when the view has a unique index (readers are not blocked then)."""
    ident = sql.Identifier(schema, name)
    concurrent = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = %s::regclass AND indisunique AND indisvalid "
        "AND indpred IS NULL) AND (SELECT relispopulated FROM pg_class WHERE oid = %s::regclass)",
        (ident.as_string(conn), ident.as_string(conn))).fetchone()[0]
    statement = sql.SQL("REFRESH MATERIALIZED VIEW CONCURRENTLY {}" if concurrent
                        else "REFRESH MATERIALIZED VIEW {}").format(ident)
    size = _size(conn, schema, name)
    out = run_guarded(conn, statement, safety, exclusive_on=None if concurrent else (schema, name))
    return Result(out, size, _size(conn, schema, name), "concurrently" if concurrent else "with an exclusive lock")


def materialized_views(conn, schemas: list[str]) -> list[tuple[str, str]]:
    return conn.execute("SELECT schemaname, matviewname FROM pg_matviews WHERE schemaname = ANY(%s) ORDER BY 1, 2",
                        (schemas,)).fetchall()
