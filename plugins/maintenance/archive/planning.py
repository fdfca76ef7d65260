"""Partition planning (the monthly "partition large tables"): create the next months'
partitions of tables partitioned by month, and propose monthly partitioning for large
tables that are not partitioned yet, with what it would cost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from psycopg import sql

from maintenance.archive.partitions import Partition
from maintenance.archive.plan import months_before
from maintenance.archive.tables import TableInfo

_TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")


@dataclass
class Proposal:
    table: str
    bytes: int
    rows: int
    time_column: str
    first: str | None
    last: str | None
    months: int
    estimated_minutes: float
    notes: list[str]

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def partitioned_by_time(conn, schemas: list[str]) -> list[TableInfo]:
    rows = conn.execute("""
        SELECT n.nspname, c.relname FROM pg_partitioned_table p
        JOIN pg_class c ON c.oid = p.partrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
        WHERE p.partstrat = 'r' AND p.partnatts = 1 AND n.nspname = ANY(%s) AND NOT c.relispartition
          AND format_type(a.atttypid, a.atttypmod) = ANY(%s)
        ORDER BY 1, 2""", (schemas, list(_TIME_TYPES))).fetchall()
    return [TableInfo(s, t, (), (), True) for s, t in rows]


def missing_months(conn, existing: list[Partition], today: date, ahead: int) -> list[tuple[date, date]]:
    """Monthly ranges from this month to ``ahead`` months on that no partition covers."""
    wanted = []
    month = today.replace(day=1)
    for _ in range(ahead + 1):
        following = months_before(month, -1)
        # Read the month's start as the server reads the partition's bound literal.
        start = conn.execute("SELECT %s::timestamptz", (str(month),)).fetchone()[0]
        covered = any(p.lower is not None and p.upper is not None and p.lower <= start < p.upper for p in existing)
        if not covered:
            wanted.append((month, following))
        month = following
    return wanted


def create_month(conn, table: TableInfo, start: date, end: date, safety) -> str:
    from maintenance.postgres.safety import run_guarded

    name = f"{table.name[:50]}_{start:%Y_%m}"
    # CREATE ... PARTITION OF locks the parent briefly: under the lock budget, with retries.
    run_guarded(conn, sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
        sql.Identifier(table.schema, name), table.ident, sql.Literal(str(start)), sql.Literal(str(end))), safety)
    return f"{table.schema}.{name}"


def proposals(conn, schemas: list[str], settings) -> list[Proposal]:
    rows = conn.execute("""
        SELECT n.nspname, c.relname, pg_total_relation_size(c.oid), greatest(c.reltuples, 0)::bigint
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND NOT c.relispartition AND n.nspname = ANY(%s)
          AND pg_total_relation_size(c.oid) >= %s
        ORDER BY 3 DESC""", (schemas, settings.min_table_bytes)).fetchall()
    found = []
    for schema, name, size, tuples in rows:
        column = _time_column(conn, schema, name)
        if column is None:
            continue
        ident = sql.Identifier(schema, name)
        first, last = conn.execute(sql.SQL("SELECT min({c}), max({c}) FROM {t}").format(
            c=sql.Identifier(column), t=ident)).fetchone()
        months = ((last.year - first.year) * 12 + last.month - first.month + 1) if first and last else 0
        notes = []
        pk = conn.execute("""SELECT array_agg(a.attname) FROM pg_index i JOIN pg_attribute a
                             ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                             WHERE i.indrelid = %s::regclass AND i.indisprimary""",
                          (ident.as_string(conn),)).fetchone()[0]
        if pk and column not in pk:
            notes.append(f"the primary key ({', '.join(pk)}) must grow to include {column}")
        notes.append("the rewrite copies every row: do it in the planned window or through a shadow table")
        found.append(Proposal(f"{schema}.{name}", size, tuples, column, str(first) if first else None,
                              str(last) if last else None, months,
                              round(size / 2**20 / settings.rewrite_mb_per_second / 60, 1), notes))
    return found


def _time_column(conn, schema: str, name: str) -> str | None:
    """The time column to partition by: an indexed one first, then the first of the table."""
    row = conn.execute("""
        SELECT a.attname FROM pg_attribute a
        WHERE a.attrelid = format('%%I.%%I', %s::text, %s::text)::regclass AND a.attnum > 0 AND NOT a.attisdropped
          AND format_type(a.atttypid, a.atttypmod) = ANY(%s)
        ORDER BY EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indkey[0] = a.attnum) DESC,
                 a.attnum
        LIMIT 1""", (schema, name, list(_TIME_TYPES))).fetchone()
    return row[0] if row else None
