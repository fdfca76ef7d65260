"""Weekly PostgreSQL review (procedures 3.1): indexes, slow queries, wraparound, largest tables.

Read-only queries; each result becomes a finding with its evidence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maintenance.policy.model import UnusedIndexRules

WRAPAROUND_LIMIT = 2**31


def unused_indexes(conn, schemas: list[str], rules: UnusedIndexRules) -> list[dict]:
    rows = conn.execute("""
        SELECT s.schemaname, s.indexrelname, s.relname, s.idx_scan, pg_relation_size(s.indexrelid),
               coalesce(t.n_tup_ins + t.n_tup_upd + t.n_tup_del, 0) AS writes
        FROM pg_stat_user_indexes s
        JOIN pg_index i ON i.indexrelid = s.indexrelid
        JOIN pg_stat_user_tables t ON t.relid = s.relid
        WHERE s.schemaname = ANY(%s) AND NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid
        ORDER BY pg_relation_size(s.indexrelid) DESC""", (schemas,)).fetchall()
    found = []
    for schema, index, table, scans, size, writes in rows:
        if scans == 0:
            why = "never used since statistics were reset"
        elif writes > rules.writes_per_scan * scans and scans < rules.max_scans_for_writes:
            why = f"{scans} scans against {writes} writes: it costs more than it serves"
        elif size > rules.large_bytes and scans < rules.max_scans_for_large:
            why = f"{size / 2**20:.0f} MB and only {scans} scans"
        else:
            continue
        found.append({"target": f"{schema}.{index}", "table": table, "scans": scans, "bytes": size,
                      "writes": writes, "why": why})
    return found


def duplicate_indexes(conn, schemas: list[str]) -> list[dict]:
    rows = conn.execute("""
        SELECT n.nspname, array_agg(c.relname ORDER BY c.relname), t.relname
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%s) AND i.indisvalid  -- an invalid one is reported, and dropped, as such
        GROUP BY n.nspname, t.relname, i.indrelid, i.indkey::text, i.indclass::text,
                 coalesce(pg_get_expr(i.indexprs, i.indrelid), ''), coalesce(pg_get_expr(i.indpred, i.indrelid), '')
        HAVING count(*) > 1""", (schemas,)).fetchall()
    return [{"target": f"{schema}.{names[0]}", "table": table, "duplicates": names} for schema, names, table in rows]


def invalid_indexes(conn, schemas: list[str]) -> list[dict]:
    rows = conn.execute("""
        SELECT n.nspname, c.relname, t.relname FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%s) AND NOT i.indisvalid""", (schemas,)).fetchall()
    return [{"target": f"{s}.{name}", "table": table} for s, name, table in rows]


def slow_queries(conn, mean_ms: float, limit: int = 20) -> list[dict] | None:
    """Statements slower than ``mean_ms`` on average; None when pg_stat_statements is not installed."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone() is None:
        return None
    rows = conn.execute("""
        SELECT queryid, calls, mean_exec_time, total_exec_time, left(query, 500)
        FROM pg_stat_statements WHERE mean_exec_time > %s AND dbid = (SELECT oid FROM pg_database
                                                                      WHERE datname = current_database())
        ORDER BY mean_exec_time DESC LIMIT %s""", (mean_ms, limit)).fetchall()
    return [{"target": f"queryid {qid}", "calls": calls, "mean_ms": round(mean, 1), "total_ms": round(total, 1),
             "query": text} for qid, calls, mean, total, text in rows]


def wraparound(conn) -> list[dict]:
    rows = conn.execute("SELECT datname, age(datfrozenxid) FROM pg_database WHERE datallowconn").fetchall()
    return [{"target": name, "xid_age": age, "headroom_pct": 100 * (1 - age / WRAPAROUND_LIMIT)}
            for name, age in rows]


def largest_tables(conn, schemas: list[str], limit: int = 20) -> list[dict]:
    """The largest tables with their index and TOAST shares. A partitioned table counts as the
    sum of its leaf partitions (it has no storage of its own), and its partitions are not listed
    apart from it."""
    rows = conn.execute("""
        SELECT n.nspname, c.relname, sum(pg_total_relation_size(l.oid))::bigint, sum(pg_relation_size(l.oid))::bigint,
               sum(pg_indexes_size(l.oid))::bigint,
               sum(coalesce(pg_total_relation_size(nullif(l.reltoastrelid, 0)), 0))::bigint,
               count(*) FILTER (WHERE c.relkind = 'p')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN LATERAL (
            SELECT c.oid, c.reltoastrelid WHERE c.relkind <> 'p'
            UNION ALL
            SELECT leaf.oid, leaf.reltoastrelid FROM pg_partition_tree(c.oid) tree
            JOIN pg_class leaf ON leaf.oid = tree.relid WHERE c.relkind = 'p' AND tree.isleaf
        ) l ON true
        WHERE c.relkind IN ('r', 'm', 'p') AND NOT c.relispartition AND n.nspname = ANY(%s)
        GROUP BY n.nspname, c.relname
        ORDER BY 3 DESC LIMIT %s""", (schemas, limit)).fetchall()
    return [{"target": f"{s}.{name}", "total_bytes": total, "heap_bytes": heap,
             "index_share": idx / total if total else 0, "toast_share": toast / total if total else 0,
             "partitions": partitions}
            for s, name, total, heap, idx, toast, partitions in rows]
