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


# What happens to rows of other tables when a source row is deleted (pg_constraint.confdeltype).
ON_DELETE = {"a": "no action", "r": "restrict", "c": "cascade", "n": "set null", "d": "set default"}
KEEPS_REFERENCED = ("no action", "restrict")  # the delete would fail: such rows stay in the source


@dataclass(frozen=True)
class Reference:
    """A foreign key of another table (the child) that points at the source."""

    constraint: str
    table: str  # the child, schema.table
    columns: tuple[str, ...]  # the child's columns...
    referenced: tuple[str, ...]  # ...equal to these columns of the source
    on_delete: str

    @property
    def keeps_rows(self) -> bool:
        return self.on_delete in KEEPS_REFERENCED

    def as_dict(self) -> dict:
        return {"constraint": self.constraint, "table": self.table, "columns": list(self.columns),
                "referenced": list(self.referenced), "on_delete": self.on_delete}


def references_to(conn, source: Relation) -> list[Reference]:
    """Every foreign key, from any table of any schema (plain or partitioned), that references
    the source (a partitioned source: its top-level constraints, not their per-partition copies)."""
    rows = conn.execute("""
        SELECT c.conname, cn.nspname, cc.relname, c.confdeltype,
               array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o),
               array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o)
        FROM pg_constraint c JOIN pg_class cc ON cc.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
        WHERE c.contype = 'f' AND c.confrelid = (format('%%I.%%I', %s::text, %s::text))::regclass
          AND c.conparentid = 0
        ORDER BY cn.nspname, cc.relname, c.conname""", (source.schema, source.name)).fetchall()
    return [Reference(name, f"{schema}.{table}", tuple(cols), tuple(refs), ON_DELETE[kind])
            for name, schema, table, kind, cols, refs in rows]


@dataclass(frozen=True)
class DeleteHook:
    """A user trigger or rule that fires when a source row is deleted."""

    kind: str  # "trigger" or "rule"
    name: str
    enabled: bool

    def as_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "enabled": self.enabled}


def delete_hooks(conn, source: Relation) -> list[DeleteHook]:
    """User triggers (row or statement, BEFORE or AFTER) and rules on DELETE of the source."""
    rows = conn.execute("""
        SELECT 'trigger', t.tgname, t.tgenabled <> 'D' FROM pg_trigger t
        WHERE t.tgrelid = (format('%%I.%%I', %s::text, %s::text))::regclass AND NOT t.tgisinternal
          AND t.tgtype::int & 8 <> 0
        UNION ALL
        SELECT 'rule', r.rulename, r.ev_enabled <> 'D' FROM pg_rewrite r
        WHERE r.ev_class = (format('%%I.%%I', %s::text, %s::text))::regclass AND r.ev_type = '4'
        ORDER BY 1, 2""", (source.schema, source.name) * 2).fetchall()
    return [DeleteHook(kind, name, enabled) for kind, name, enabled in rows]


def still_referenced(references: list[Reference], alias: str = "s") -> sql.Composable:
    """``EXISTS (a child row points at this source row)`` for the references that keep rows, OR'ed;
    ``false`` when there is none. The source row is ``alias``."""
    tests = []
    for ref in references:
        if not ref.keeps_rows:
            continue
        child = sql.Identifier(*split(ref.table))
        match = sql.SQL(" AND ").join(
            sql.SQL("c.{} = {}.{}").format(sql.Identifier(c), sql.Identifier(alias), sql.Identifier(p))
            for c, p in zip(ref.columns, ref.referenced, strict=True))
        tests.append(sql.SQL("EXISTS (SELECT 1 FROM {} AS c WHERE {})").format(child, match))
    return sql.SQL(" OR ").join(tests) if tests else sql.SQL("false")


def census(conn, source: TableInfo, time_column: str, cutoff, references: list[Reference]) -> dict:
    """For the plan: the old rows that will move and their bytes, the old rows kept because a
    child still references them (per reference), and the rows with no time at all (never moved)."""
    time = sql.Identifier(time_column)
    kept = {}
    for ref in references:
        if ref.keeps_rows:
            kept[ref.table] = conn.execute(sql.SQL("SELECT count(*) FROM {} AS s WHERE {} < %s AND {}").format(
                source.ident, time, still_referenced([ref])), (cutoff,)).fetchone()[0]
    movable, size = conn.execute(sql.SQL(
        "SELECT count(*), coalesce(sum(pg_column_size(s.*)), 0) FROM {} AS s WHERE {} < %s AND NOT ({})").format(
        source.ident, time, still_referenced(references)), (cutoff,)).fetchone()
    no_time = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(source.ident, time)).fetchone()[0]
    return {"rows": int(movable), "bytes": int(size), "kept_referenced": kept, "no_time": int(no_time)}


def children_of_old(conn, source: TableInfo, time_column: str, cutoff, ref: Reference,
                    kept: list[Reference]) -> int:
    """Rows of ``ref``'s child that reference source rows about to move (for the plan)."""
    match = sql.SQL(" AND ").join(sql.SQL("s.{} = c.{}").format(sql.Identifier(p), sql.Identifier(c))
                                  for c, p in zip(ref.columns, ref.referenced, strict=True))
    return conn.execute(sql.SQL(
        "SELECT count(*) FROM {} AS c WHERE EXISTS (SELECT 1 FROM {} AS s WHERE {} AND s.{} < %s AND NOT ({}))").format(
        sql.Identifier(*split(ref.table)), source.ident, match, sql.Identifier(time_column),
        still_referenced(kept)), (cutoff,)).fetchone()[0]
