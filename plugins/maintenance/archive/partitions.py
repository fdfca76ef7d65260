"""Range-partitioned tables: archive whole old partitions in constant time; plan partitions.

A partition whose upper bound is at or before the cutoff holds only rows to archive: it is
detached from the source (``DETACH PARTITION ... CONCURRENTLY`` where the server allows it)
and attached to the archive, itself partitioned the same way, with the same bounds. Its
rows never move, so the time does not depend on its size. A partition that straddles the
cutoff, or whose range the archive already holds, goes through the batched path, and an
emptied source partition is then detached and dropped (it holds nothing any more).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql

from maintenance.archive.tables import Relation, TableInfo

_RANGE = re.compile(r"FROM \((.+)\) TO \((.+)\)\s*$")


@dataclass(frozen=True)
class Partition(Relation):
    bound: str  # the server's own text: FOR VALUES FROM (...) TO (...), or DEFAULT
    upper: datetime | None  # None: MAXVALUE or DEFAULT
    lower: datetime | None = None  # None: MINVALUE or DEFAULT


def partitions(conn, table: TableInfo) -> list[Partition]:
    rows = conn.execute("""
        SELECT n.nspname, c.relname, pg_get_expr(c.relpartbound, c.oid)
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE i.inhparent = %s::regclass ORDER BY 3""", (table.ident.as_string(conn),)).fetchall()
    found = []
    for schema, name, bound in rows:
        match = _RANGE.search(bound)
        ends = [None, None]
        for i, literal in enumerate(match.groups() if match else ()):
            if "MINVALUE" not in literal and "MAXVALUE" not in literal:
                # The bound is a literal the server printed; let the server read it back as a
                # point in time (the key is a date, timestamp or timestamptz).
                ends[i] = conn.execute(sql.SQL("SELECT ({})::timestamptz").format(sql.SQL(literal))).fetchone()[0]
        found.append(Partition(schema, name, bound, ends[1], ends[0]))
    return sorted(found, key=lambda p: (p.upper is None, p.upper or datetime.min))


def fully_old(partition: Partition, cutoff: datetime) -> bool:
    return partition.upper is not None and partition.upper <= cutoff


def key_column(conn, table: TableInfo) -> str:
    return conn.execute("""
        SELECT a.attname FROM pg_partitioned_table p
        JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
        WHERE p.partrelid = %s::regclass""", (table.ident.as_string(conn),)).fetchone()[0]


def ensure_partitioned_archive(conn, source: TableInfo, archive_ident: sql.Identifier, key: str) -> None:
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING CONSTRAINTS) PARTITION BY RANGE ({})")
                 .format(archive_ident, source.ident, sql.Identifier(key)))
    has_key = conn.execute("SELECT 1 FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
                           (archive_ident.as_string(conn),)).fetchone()
    if not has_key:
        conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
            archive_ident, sql.SQL(", ").join(map(sql.Identifier, source.key))))


def _detach(conn, source: TableInfo, part: Partition) -> str:
    """Detach, leaving a CHECK constraint equal to the partition's range, so attaching it
    elsewhere needs no scan."""
    if conn.info.server_version >= 140000 and not _has_default(conn, source):
        conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY").format(source.ident, part.ident))
        return "concurrently"  # which adds that CHECK constraint itself
    # CONCURRENTLY is not allowed with a default partition (or before 14): add the constraint
    # without blocking (NOT VALID, then VALIDATE takes no lock that stops writers), then a plain
    # detach under lock_timeout.
    expr = conn.execute("SELECT pg_get_partition_constraintdef(%s::regclass)",
                        (part.ident.as_string(conn),)).fetchone()[0]
    check = sql.Identifier(f"{part.name[:50]}_range_check")
    conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({}) NOT VALID").format(part.ident, check,
                                                                                          sql.SQL(expr)))
    conn.execute(sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(part.ident, check))
    conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(source.ident, part.ident))
    return "plain"


def _has_default(conn, table: TableInfo) -> bool:
    return conn.execute("""SELECT EXISTS (SELECT 1 FROM pg_partitioned_table
                           WHERE partrelid = %s::regclass AND partdefid <> 0)""",
                        (table.ident.as_string(conn),)).fetchone()[0]


# A partition between two tables carries this note (its comment) until it lands: a run killed
# after the detach finds it, detached from the source and attached nowhere, and finishes the move.
MOVING = "maintenance: moving partition "


def _mark(conn, part: Relation, note: dict | None) -> None:
    import json

    text = sql.Literal(MOVING + json.dumps(note)) if note else sql.SQL("NULL")
    conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(part.ident, text))


def move_partition(conn, source: TableInfo, archive_name: str, part: Partition) -> str:
    """Detach a wholly old partition from the source and attach it to the archive."""
    from maintenance.archive.tables import split

    archive_ident = sql.Identifier(*split(archive_name))
    _mark(conn, part, {"from": source.qualified, "to": archive_name, "bound": part.bound})
    how = _detach(conn, source, part)
    # The bound text is the server's own rendering of the partition's range.
    conn.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} {}").format(archive_ident, part.ident,
                                                                          sql.SQL(part.bound)))
    _mark(conn, part, None)
    return how


def finish_interrupted_moves(conn, source: TableInfo) -> list[dict]:
    """Partitions a killed run left between the source and the archive (detached, attached
    nowhere, still marked): attached where they were going, or back to the source."""
    import json

    rows = conn.execute("""
        SELECT n.nspname, c.relname, d.description FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_description d ON d.objoid = c.oid AND d.objsubid = 0
        WHERE c.relkind = 'r' AND NOT c.relispartition AND d.description LIKE %s""", (MOVING + "%",)).fetchall()
    done = []
    for schema, name, description in rows:
        note = json.loads(description.removeprefix(MOVING))
        if note["from"] != source.qualified:
            continue
        part = Partition(schema, name, note["bound"], None)
        target = sql.Identifier(*note["to"].split(".", 1)) if note.get("to") else None
        taken = target is not None and conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass AND pg_get_expr(c.relpartbound, c.oid) = %s)",
            (target.as_string(conn), note["bound"])).fetchone()[0]
        if target is not None and not taken:
            conn.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} {}").format(target, part.ident,
                                                                                  sql.SQL(part.bound)))
            outcome = f"attached to {note['to']}, as the interrupted run meant to"
        else:
            outcome = "dropped (empty)" if drop_or_return(conn, source, part) else "attached back to the source"
        if outcome != "dropped (empty)":
            _mark(conn, part, None)
        done.append({"partition": part.qualified, "outcome": outcome})
    return done


def ensure_archive_partition(conn, archive_ident: sql.Identifier, archive_parts: list[Partition],
                             part: Partition) -> None:
    """The archive needs a partition for rows of ``part`` moved through the batched path."""
    if any(p.bound == part.bound for p in archive_parts):
        return
    name = sql.Identifier(part.schema, f"{part.name}_archive")
    conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF {} {}").format(name, archive_ident, sql.SQL(part.bound)))


def _has_rows(conn, table: Relation) -> bool:
    return conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(table.ident)).fetchone()[0]


def drop_if_empty(conn, source: TableInfo, part: Partition) -> bool:
    """An old source partition emptied by verified batches: detach it, then drop it if it is
    still empty under the lock the drop takes. A back-dated row committed before the detach is
    in the detached table: the partition goes back into the source, nothing dropped."""
    if _has_rows(conn, part):  # not empty yet: nothing to do (this look decides nothing else)
        return False
    _mark(conn, part, {"from": source.qualified, "to": None, "bound": part.bound})
    _detach(conn, source, part)
    dropped = drop_or_return(conn, source, part)
    if not dropped:
        _mark(conn, part, None)
    return dropped


def drop_or_return(conn, source: TableInfo, part: Partition) -> bool:
    """A detached old partition: dropped when empty (decided under the drop's own lock), else
    attached back to the source with its bound, its rows left for the batched path."""
    with conn.transaction():
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(part.ident))
        if not _has_rows(conn, part):
            conn.execute(sql.SQL("DROP TABLE {}").format(part.ident))
            return True
    conn.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} {}").format(source.ident, part.ident,
                                                                         sql.SQL(part.bound)))
    return False


def finish_pending_detaches(conn, source: TableInfo) -> list[dict]:
    """A ``DETACH ... CONCURRENTLY`` interrupted (a timeout, a kill) leaves its partition *detach
    pending*: hidden from the source's readers, refusing inserts into its range. Finish it
    (``FINALIZE``), then drop it when empty or attach it back to the source: its rows are never
    left outside both tables."""
    pending = conn.execute("""
        SELECT n.nspname, c.relname, pg_get_expr(c.relpartbound, c.oid)
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE i.inhparent = %s::regclass AND i.inhdetachpending""", (source.ident.as_string(conn),)).fetchall()
    done = []
    for schema, name, bound in pending:
        part = Partition(schema, name, bound, None)
        conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {} FINALIZE").format(source.ident, part.ident))
        note = conn.execute("SELECT obj_description(%s::regclass, 'pg_class')",
                            (part.ident.as_string(conn),)).fetchone()[0] or ""
        if note.startswith(MOVING):  # ours: finish_interrupted_moves takes it where it was going
            done.append({"partition": part.qualified, "finalized": True})
        else:  # someone else's detach: its rows are not ours to drop or move
            outcome = "dropped (empty)" if drop_or_return(conn, source, part) else "attached back to the source"
            done.append({"partition": part.qualified, "finalized": True, "outcome": outcome})
    return done


@dataclass
class PartitionedMove:
    attached: list[dict]
    dropped: list[str]
    recovered: list[dict]  # interrupted detaches finished this run

    def as_dict(self) -> dict:
        return {"attached": self.attached, "dropped": self.dropped, "recovered": self.recovered}


def archive_whole_partitions(conn, source: TableInfo, archive_name: str, cutoff: datetime) -> tuple[
        sql.Identifier, PartitionedMove, list[Partition]]:
    """Attach every wholly old partition to the archive; prepare archive partitions for the rest.

    Returns the archive, what was attached, and the old source partitions left to the batched
    path (to be dropped once empty with ``drop_if_empty``).
    """
    import time

    from maintenance.archive.tables import split

    key = key_column(conn, source)
    archive_ident = sql.Identifier(*split(archive_name))
    ensure_partitioned_archive(conn, source, archive_ident, key)
    recovered: dict[str, dict] = {}
    for step in finish_pending_detaches(conn, source) + finish_interrupted_moves(conn, source):
        recovered.setdefault(step["partition"], {}).update(step)
    archive_info = TableInfo(*split(archive_name), source.columns, source.key, True)
    taken = {p.bound for p in partitions(conn, archive_info)}
    moved, left = PartitionedMove([], [], list(recovered.values())), []
    for part in partitions(conn, source):
        if fully_old(part, cutoff) and part.bound not in taken:
            size = conn.execute("SELECT pg_total_relation_size(%s::regclass)",
                                (part.ident.as_string(conn),)).fetchone()[0]
            started = time.perf_counter()
            how = move_partition(conn, source, archive_name, part)
            moved.attached.append({"partition": part.qualified, "bytes": size, "detach": how,
                                   "seconds": round(time.perf_counter() - started, 3)})
            continue
        holds_old = part.lower is None or part.lower < cutoff
        if part.bound != "DEFAULT" and holds_old:  # straddles the cutoff, or its range is taken
            ensure_archive_partition(conn, archive_ident, partitions(conn, archive_info), part)
        if part.bound == "DEFAULT" and "DEFAULT" not in taken:
            conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} DEFAULT").format(
                sql.Identifier(part.schema, f"{part.name}_archive"), archive_ident))
        if fully_old(part, cutoff):
            left.append(part)
    return archive_ident, moved, left
