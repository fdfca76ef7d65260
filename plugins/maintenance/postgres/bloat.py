"""Bloat analysis: a fast statistical estimate, exact measurement of the top candidates.

The estimate follows the well-known catalog queries: from ``pg_stats`` (average
width and null fraction of every column) it computes the size a table or btree
index would have if tightly packed, and compares it with its real size. It is
only as good as the statistics, so it refuses, per relation and with the
reason, where it cannot be trusted: statistics missing or stale, no read access
to ``pg_stats`` for the table, TOAST-heavy rows (widths in ``pg_stats`` are
compressed, out-of-line sizes), non-btree indexes, expression indexes without
statistics, and low-cardinality btrees whose deduplication the arithmetic
cannot see. The top candidates are then measured with ``pgstattuple_approx``
and ``pgstatindex`` when the extension is installed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime

from psycopg import sql

PAGE_HEADER = 24
TUPLE_HEADER = 23
INDEX_TUPLE_HEADER = 8
ITEM_POINTER = 4
BTREE_SPECIAL = 16
MAXALIGN = 8


def _align(n: float, to: int = MAXALIGN) -> float:
    return math.ceil(n / to) * to


@dataclass
class Relation:
    kind: str  # "table" or "index"
    schema: str
    name: str
    table: str
    bytes: int
    estimated: float | None = None
    refused: str | None = None
    measured: float | None = None
    dead_ratio: float | None = None
    invalid: bool = False
    method: str = ""
    action: str | None = None
    why: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def bloat(self) -> float | None:
        return self.measured if self.measured is not None else self.estimated

    @property
    def wasted_bytes(self) -> float:
        return self.bytes * (self.bloat or 0)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["bloat"] = self.bloat
        return data


_COLUMN_STATS = """
SELECT s.schemaname, s.tablename, s.attname, s.avg_width, s.null_frac, s.n_distinct
FROM pg_stats s
WHERE s.schemaname = ANY(%(schemas)s) AND NOT s.inherited
"""

_TABLES = """
SELECT c.oid, n.nspname, c.relname, c.reltuples,
       pg_relation_size(c.oid) AS heap_bytes,
       coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS toast_bytes,
       coalesce(substring(array_to_string(c.reloptions, ' ') from 'fillfactor=([0-9]+)')::int, 100) AS fillfactor,
       has_table_privilege(c.oid, 'SELECT') AS readable,
       (SELECT count(*) FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS ncols,
       st.n_live_tup, st.n_dead_tup, st.n_mod_since_analyze,
       greatest(st.last_analyze, st.last_autoanalyze) AS analyzed_at,
       c.relkind
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_all_tables st ON st.relid = c.oid
WHERE c.relkind IN ('r', 'm') AND n.nspname = ANY(%(schemas)s)
"""

_INDEXES = """
SELECT i.indexrelid AS oid, n.nspname, ci.relname, ct.relname AS table_name, am.amname,
       ci.reltuples, pg_relation_size(i.indexrelid) AS bytes, i.indisvalid, i.indisunique,
       i.indexprs IS NOT NULL AS has_expr,
       ARRAY(SELECT a.attname FROM unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             ORDER BY k.ord) AS key_columns,
       coalesce(substring(array_to_string(ci.reloptions, ' ') from 'fillfactor=([0-9]+)')::int, 90) AS fillfactor,
       coalesce(array_to_string(ci.reloptions, ' ') ~ 'deduplicate_items=(off|false)', false) AS dedup_off
FROM pg_index i
JOIN pg_class ci ON ci.oid = i.indexrelid
JOIN pg_class ct ON ct.oid = i.indrelid
JOIN pg_namespace n ON n.oid = ci.relnamespace
JOIN pg_am am ON am.oid = ci.relam
WHERE n.nspname = ANY(%(schemas)s) AND ct.relkind IN ('r', 'm')
"""


def estimate(conn, schemas: list[str], thresholds, now: datetime) -> list[Relation]:
    """Estimated bloat of every table, materialized view and index in ``schemas``."""
    params = {"schemas": schemas}
    block = int(conn.execute("SELECT current_setting('block_size')").fetchone()[0])
    stats: dict[tuple[str, str], dict[str, tuple]] = defaultdict(dict)
    for schema, table, column, width, null_frac, n_distinct in conn.execute(_COLUMN_STATS, params):
        stats[(schema, table)][column] = (width, null_frac, n_distinct)

    relations: list[Relation] = []
    table_refusal: dict[tuple[str, str], str | None] = {}
    for row in conn.execute(_TABLES, params).fetchall():
        (_, schema, name, reltuples, heap_bytes, toast_bytes, fillfactor, readable, ncols,
         live, dead, modified, analyzed_at, _relkind) = row
        rel = Relation("table", schema, name, name, heap_bytes + toast_bytes)
        total = (live or 0) + (dead or 0)
        rel.dead_ratio = (dead or 0) / total if total else 0.0
        rel.extra = {"toast_bytes": toast_bytes, "n_dead_tup": dead, "n_live_tup": live,
                     "analyzed_at": analyzed_at.isoformat() if analyzed_at else None}
        cols = stats.get((schema, name), {})
        rel.refused = _table_refusal(readable, ncols, cols, reltuples, modified, analyzed_at, heap_bytes,
                                     toast_bytes, thresholds, now)
        if rel.refused is None:
            rel.estimated, rel.method = _table_estimate(cols, ncols, reltuples, heap_bytes, fillfactor, block), \
                "estimate"
        table_refusal[(schema, name)] = rel.refused
        relations.append(rel)

    for row in conn.execute(_INDEXES, params).fetchall():
        (_, schema, name, table, am, reltuples, nbytes, valid, unique, has_expr, key_columns, fillfactor,
         dedup_off) = row
        rel = Relation("index", schema, name, table, nbytes, invalid=not valid)
        rel.extra = {"access_method": am, "unique": unique}
        rel.refused = _index_refusal(am, valid, has_expr, key_columns, stats, schema, name, table, reltuples,
                                     unique, dedup_off, table_refusal.get((schema, table)))
        if rel.refused is None:
            widths = [stats[(schema, table)][c] for c in key_columns]
            rel.estimated, rel.method = _index_estimate(widths, reltuples, nbytes, fillfactor, block), "estimate"
        relations.append(rel)
    return relations


def _table_refusal(readable, ncols, cols, reltuples, modified, analyzed_at, heap_bytes, toast_bytes, t, now):
    if not readable:
        return "no read access to the table, so none to its pg_stats rows"
    if reltuples is None or reltuples < 0 or analyzed_at is None:
        return "no statistics yet: run ANALYZE"
    if len(cols) < ncols:
        return f"statistics missing for {ncols - len(cols)} of {ncols} columns: run ANALYZE"
    age_h = (now - analyzed_at).total_seconds() / 3600
    if age_h > t.stats_max_age_hours:
        return f"statistics are {age_h:.0f} h old (limit {t.stats_max_age_hours:g} h): run ANALYZE"
    if reltuples > 0 and (modified or 0) > t.stats_max_modified_fraction * reltuples:
        return f"statistics stale: {modified} rows changed since the last ANALYZE of ~{reltuples:.0f}"
    if heap_bytes and toast_bytes > t.toast_heavy_fraction * heap_bytes:
        return "TOAST-heavy rows: pg_stats widths do not reflect the heap's tuples"
    if heap_bytes == 0:
        return "empty table"
    return None


def _table_estimate(cols: dict, ncols: int, reltuples: float, heap_bytes: int, fillfactor: int, block: int):
    data_width = sum((1 - nf) * w for w, nf, _ in cols.values())
    has_nulls = any(nf > 0 for _, nf, _ in cols.values())
    header = _align(TUPLE_HEADER + (math.ceil(ncols / 8) if has_nulls else 0))
    tuple_size = header + _align(data_width)
    per_page = max(math.floor((block - PAGE_HEADER) * fillfactor / 100 / (tuple_size + ITEM_POINTER)), 1)
    expected_pages = math.ceil(reltuples / per_page) if reltuples > 0 else 0
    pages = heap_bytes / block
    return max(pages - expected_pages, 0) / pages if pages else 0.0


def _index_refusal(am, valid, has_expr, key_columns, stats, schema, name, table, reltuples, unique, dedup_off,
                   table_refused):
    if not valid:
        return "invalid index (a failed concurrent build): drop or rebuild it"
    if am != "btree":
        return f"{am} index: only btree bloat can be estimated"
    if has_expr:
        return "expression index: pg_stats has no widths for its expressions"
    if table_refused:
        return f"table statistics unusable: {table_refused}"
    missing = [c for c in key_columns if c not in stats.get((schema, table), {})]
    if missing:
        return f"statistics missing for {', '.join(missing)}: run ANALYZE"
    if not unique and not dedup_off and reltuples > 0:
        n_distinct = stats[(schema, table)][key_columns[0]][2]
        distinct = -n_distinct * reltuples if n_distinct < 0 else n_distinct
        if distinct and reltuples / distinct > 2:
            return (f"low-cardinality btree (~{reltuples / distinct:.0f} rows per key) with deduplication: "
                    "the estimate cannot see it")
    return None


def _index_estimate(widths: list[tuple], reltuples: float, nbytes: int, fillfactor: int, block: int) -> float:
    data_width = sum((1 - nf) * w for w, nf, _ in widths)
    has_nulls = any(nf > 0 for _, nf, _ in widths)
    tuple_size = _align(INDEX_TUPLE_HEADER + (MAXALIGN if has_nulls else 0) + data_width)
    usable = (block - PAGE_HEADER - BTREE_SPECIAL) * fillfactor / 100
    per_page = max(math.floor(usable / (tuple_size + ITEM_POINTER)), 1)
    leaf_pages = math.ceil(reltuples / per_page) if reltuples > 0 else 1
    expected = leaf_pages + math.ceil(leaf_pages / max(per_page, 2)) + 1  # internal levels and the metapage
    pages = nbytes / block
    return max(pages - expected, 0) / pages if pages else 0.0


def has_pgstattuple(conn) -> bool:
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pgstattuple'").fetchone() is not None


def measure(conn, relations: list[Relation], top_n: int, min_bytes: int) -> None:
    """Measure the ``top_n`` largest wasters (and every refused relation big enough) exactly."""
    if top_n <= 0 or not has_pgstattuple(conn):
        return
    candidates = [r for r in relations if r.bytes >= min_bytes and not r.invalid
                  and (r.kind == "table" or r.extra.get("access_method") == "btree")]
    # Where the estimate refused, the whole size is in doubt: rank it by its size.
    candidates.sort(key=lambda r: -(r.bytes if r.refused else r.wasted_bytes))
    for rel in candidates[:top_n]:
        regclass = sql.Literal(sql.Identifier(rel.schema, rel.name).as_string(conn))
        if rel.kind == "table":
            table_len, free, dead = conn.execute(sql.SQL(
                "SELECT table_len, approx_free_space, dead_tuple_len FROM pgstattuple_approx({}::regclass)"
            ).format(regclass)).fetchone()
            rel.measured = (free + dead) / table_len if table_len else 0.0
            rel.method = "pgstattuple_approx"
        else:
            density, leaf_pages = conn.execute(sql.SQL(
                "SELECT avg_leaf_density, leaf_pages FROM pgstatindex({}::regclass)"
            ).format(regclass)).fetchone()
            fill = 90.0
            rel.measured = max(0.0, 1 - density / fill) if leaf_pages and not math.isnan(density) else 0.0
            rel.method = "pgstatindex"
