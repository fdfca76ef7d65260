"""What the archiver needs to know about a table, and the archive table made to match it."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from maintenance.errors import InputError


@dataclass(frozen=True)
class Relation:
    """A table by schema and name, composed as an identifier, never formatted into SQL."""

    schema: str
    name: str

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class TableInfo(Relation):
    columns: tuple[str, ...]
    key: tuple[str, ...]
    partitioned: bool


def split(qualified: str) -> tuple[str, str]:
    schema, _, name = qualified.partition(".")
    return schema, name


def describe(conn, qualified: str, *, field: str) -> TableInfo | None:
    """Columns, key and kind of ``schema.table``; None when it does not exist.

    The key is the primary key, else the first unique index over NOT NULL columns only:
    rows are moved and checked by key, so a table without one cannot be archived exactly once.
    """
    schema, name = split(qualified)
    row = conn.execute("""
        SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')""", (schema, name)).fetchone()
    if row is None:
        return None
    oid, kind = row
    columns = tuple(r[0] for r in conn.execute("""
        SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped
        ORDER BY attnum""", (oid,)))
    keys = conn.execute("""
        SELECT array_agg(a.attname ORDER BY k.ord)
        FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = %s AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
        GROUP BY i.indexrelid, i.indisprimary
        HAVING bool_and(a.attnotnull)
        ORDER BY i.indisprimary DESC, count(*), i.indexrelid""", (oid,)).fetchall()
    if not keys:
        raise InputError(f"{field}: {qualified} has no primary key or unique key over NOT NULL columns; "
                         "archiving moves and checks rows by key, so it refuses this table")
    return TableInfo(schema, name, columns, tuple(keys[0][0]), kind == "p")


def ensure_archive(conn, source: TableInfo, qualified: str, *, field: str) -> TableInfo:
    """The archive table: created when missing with the source's columns, types and key;
    an existing one must hold every column of the source."""
    found = describe(conn, qualified, field=field) if exists(conn, qualified) else None
    if found is None:
        schema, name = split(qualified)
        ident = sql.Identifier(schema, name)
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING CONSTRAINTS)").format(ident, source.ident))
        conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
            ident, sql.SQL(", ").join(map(sql.Identifier, source.key))))
        found = describe(conn, qualified, field=field)
    missing = [c for c in source.columns if c not in found.columns]
    if missing:
        raise InputError(f"{field}: the archive {qualified} lacks the source's columns {', '.join(missing)}")
    return found


def column_types(conn, table: Relation) -> dict[str, str]:
    """Each column's type as ``format_type`` spells it, read now (not from an earlier describe)."""
    return dict(conn.execute("""
        SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
        WHERE attrelid = (format('%%I.%%I', %s::text, %s::text))::regclass AND attnum > 0 AND NOT attisdropped""",
        (table.schema, table.name)).fetchall())


def exists(conn, qualified: str) -> bool:
    schema, name = split(qualified)
    return conn.execute("""SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = %s AND c.relname = %s""", (schema, name)).fetchone() is not None


def eligible(conn, source: TableInfo, time_column: str, cutoff) -> tuple[int, int]:
    """Rows older than the cutoff and their bytes (for the plan)."""
    row = conn.execute(sql.SQL(
        "SELECT count(*), coalesce(sum(pg_column_size(r.*)), 0) FROM {} AS r WHERE {} < %s").format(
        source.ident, sql.Identifier(time_column)), (cutoff,)).fetchone()
    return int(row[0]), int(row[1])
