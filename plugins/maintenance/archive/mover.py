"""The batched move: one statement per batch, in its own transaction, verified before commit.

Each batch walks the key: it reads the next ``n`` keys past the last position from the key index
(up to the largest key of an old row, found once), deletes the rows of that key range older than
the cutoff from the source with ``RETURNING`` and inserts exactly those into the archive, all in
one statement. The same statement reports the count and a checksum of what left and of what
arrived; the transaction commits only when they agree. So at any instant, a crash, a kill or a
dropped connection leaves every row in exactly one of the two tables, and the next run simply
continues.

What the checksum covers depends on the archive. When it cannot change a row on its way (every
column of the same type as the source's, no trigger, no rule), the rows that arrive are the rows
that left, value for value, and the checksum is over their keys: it proves the same rows left and
arrived, none lost, none twice. Otherwise every column of every row is hashed on both sides, so
a trigger or a conversion that changes a value is caught and the batch rolled back.

The batch size adapts so a batch holds its locks about ``target_ms``. A row a writer holds makes
the batch wait at most ``lock_timeout``; then the batch is halved and the next one skips locked
rows (``FOR UPDATE SKIP LOCKED``) instead of waiting: a last pass from where the first skip
happened takes what it can without waiting, and the next run the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from psycopg import errors, sql

from maintenance.archive.tables import TableInfo, column_types

log = logging.getLogger(__name__)


MAX_FAILED_BATCHES = 10  # in a row: then the run stops and the next one continues
NOTHING_KEPT = sql.SQL("false")  # no row of the source is held back


class ArchiveMismatch(RuntimeError):
    """What left the source is not what arrived in the archive: the batch was rolled back."""


@dataclass
class MoveResult:
    rows: int = 0
    batches: int = 0
    seconds: float = 0.0
    longest_batch_ms: float = 0.0
    lock_timeouts: int = 0
    batch_timeouts: int = 0  # batches cancelled at batching.max_batch_ms (rolled back, retried smaller)
    paused_seconds: float = 0.0
    stopped: str | None = None  # why it stopped before moving everything (cap, time budget)
    batch_sizes: list[int] = field(default_factory=list)
    children: dict[str, int] = field(default_factory=dict)  # rows of each child archived along

    def record(self, rows: int, limit: int, elapsed_ms: float) -> None:
        self.rows += rows
        self.batches += 1
        self.longest_batch_ms = max(self.longest_batch_ms, elapsed_ms)
        self.batch_sizes.append(limit)

    def as_dict(self) -> dict:
        return {"rows": self.rows, "batches": self.batches, "seconds": round(self.seconds, 3),
                "rows_per_second": round(self.rows / self.seconds) if self.seconds else 0,
                "longest_batch_ms": round(self.longest_batch_ms, 1), "lock_timeouts": self.lock_timeouts,
                "batch_timeouts": self.batch_timeouts, "children": dict(self.children),
                "paused_seconds": round(self.paused_seconds, 1), "stopped": self.stopped}


def hashable_by_type(conn, source: TableInfo, columns: tuple[str, ...] | None = None) -> bool:
    """Can rows be hashed field by field (``hash_record_extended``, PostgreSQL 14+)?

    It needs a hash function for every column's type (json, point and a few others have
    none); it then skips printing each row as text, the costly part of the check. One row
    is enough to probe: the function looks up every column's hash function before any value.
    With no row at all there is nothing to move.
    """
    if conn.info.server_version < 140000:
        return False
    probe = sql.SQL("SELECT hash_record_extended(ROW({}), 0) FROM {} AS r LIMIT 1").format(
        sql.SQL(", ").join(sql.Identifier("r", c) for c in columns or source.columns), source.ident)
    try:
        with conn.transaction():
            conn.execute(probe)
        return True
    except errors.Error:
        return False


def arrives_unchanged(conn, source: TableInfo, archive: TableInfo) -> bool:
    """Can the archive change a row on its way in? Not when every column has the source's type
    and the archive has no trigger and no rule: then what arrives is exactly what left."""
    of_archive = column_types(conn, archive)
    if any(of_archive.get(name) != kind for name, kind in column_types(conn, source).items()):
        return False
    hooks = conn.execute("""
        SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = r.oid AND NOT tgisinternal)
             + (SELECT count(*) FROM pg_rewrite WHERE ev_class = r.oid)
        FROM (SELECT (format('%%I.%%I', %s::text, %s::text))::regclass::oid AS oid) r""",
        (archive.schema, archive.name)).fetchone()[0]
    return hooks == 0


@dataclass(frozen=True)
class Check:
    """What each batch hashes on both sides: ``columns``, by type or through their text form."""

    columns: tuple[str, ...]
    by_type: bool

    def hash(self, alias: str) -> sql.Composed:
        fields = sql.SQL(", ").join(sql.Identifier(alias, c) for c in self.columns)
        if self.by_type:
            return sql.SQL("coalesce(sum(hash_record_extended(ROW({}), 0)), 0)").format(fields)
        return sql.SQL("coalesce(sum(hashtextextended(ROW({})::text, 0)), 0)").format(fields)


def choose_check(conn, source: TableInfo, archive: TableInfo) -> Check:
    columns = source.key if arrives_unchanged(conn, source, archive) else source.columns
    return Check(columns, hashable_by_type(conn, source, columns))


@dataclass(frozen=True)
class ChildMove:
    """A table whose rows reference the source through ``columns`` (equal to the source's
    ``referenced``): in each batch, its rows that reference a moved row move to ``archive``."""

    table: TableInfo
    archive: TableInfo
    columns: tuple[str, ...]
    referenced: tuple[str, ...]
    check: Check

    @classmethod
    def of(cls, conn, reference, table: TableInfo, archive: TableInfo) -> ChildMove:
        return cls(table, archive, reference.columns, reference.referenced, choose_check(conn, table, archive))


def _child_ctes(children: list[ChildMove]) -> tuple[sql.Composable, sql.Composable, sql.Composable]:
    """Each child's move (its rows referencing the batch's moved rows), the sums over what left and
    arrived, and their FROM items."""
    ctes, sums, froms = [], [], []
    for i, child in enumerate(children):
        cols = sql.SQL(", ").join(map(sql.Identifier, child.table.columns))
        match = sql.SQL(" AND ").join(sql.SQL("c.{} = m.{}").format(sql.Identifier(c), sql.Identifier(p))
                                      for c, p in zip(child.columns, child.referenced, strict=True))
        moved, arrived = sql.Identifier(f"c{i}_moved"), sql.Identifier(f"c{i}_arrived")
        ctes.append(sql.SQL(
            ", {moved} AS (DELETE FROM {child} AS c USING moved AS m WHERE {match} RETURNING c.*)"
            ", {arrived} AS (INSERT INTO {archive} ({cols}) SELECT {cols} FROM {moved} RETURNING {checked})").format(
            moved=moved, arrived=arrived, child=child.table.ident, match=match, archive=child.archive.ident,
            cols=cols, checked=sql.SQL(", ").join(map(sql.Identifier, child.check.columns))))
        sums.append(sql.SQL(", {m}.n, {m}.h, {a}.n, {a}.h").format(
            m=sql.Identifier(f"c{i}m"), a=sql.Identifier(f"c{i}a")))
        froms.append(sql.SQL(", (SELECT count(*) AS n, {mh} AS h FROM {moved} AS m) AS {m}"
                             ", (SELECT count(*) AS n, {ah} AS h FROM {arrived} AS a) AS {a}").format(
            mh=child.check.hash("m"), ah=child.check.hash("a"), moved=moved, arrived=arrived,
            m=sql.Identifier(f"c{i}m"), a=sql.Identifier(f"c{i}a")))
    return sql.SQL("").join(ctes), sql.SQL("").join(sums), sql.SQL("").join(froms)


def walk_end(conn, source: TableInfo, time_column: str, cutoff) -> tuple | None:
    """The largest key of a row older than the cutoff: where the walk stops (None: nothing to move).

    Found once per run, so that no batch reads past the last old row into the recent part of
    the table only to learn that nothing is left. The ``OFFSET 0`` fence makes it one pass over
    the old rows (through the time column's index when there is one), whose cost follows the
    work the run is about to do; without it, the planner would walk the key backwards through
    every recent row, hoping to meet an old one soon."""
    descending = sql.SQL(", ").join(sql.SQL("{} DESC").format(sql.Identifier(k)) for k in source.key)
    row = conn.execute(sql.SQL(
        "SELECT {keys} FROM (SELECT {keys} FROM {source} WHERE {time} < %(cutoff)s OFFSET 0) AS old "
        "ORDER BY {descending} LIMIT 1").format(keys=_keys(source), source=source.ident,
                                                time=sql.Identifier(time_column), descending=descending),
        {"cutoff": cutoff}).fetchone()
    return tuple(row) if row else None


def _keys(source: TableInfo) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, source.key))


def _key_row(source: TableInfo, prefix: str) -> sql.Composed:
    """The placeholders of a key value, ``(%(prefix_0)s, ...)``, matching ``key_params``."""
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder(f"{prefix}_{i}") for i in range(len(source.key))))


def key_params(prefix: str, key: tuple | None) -> dict:
    return {f"{prefix}_{i}": value for i, value in enumerate(key or ())}


def _range(source: TableInfo, *, after_key: bool, upper: str) -> sql.Composed:
    """``(key) > (position) AND (key) <= (upper)``: one index range condition."""
    within = sql.SQL("({}) <= {}").format(_keys(source), _key_row(source, upper))
    if after_key:
        within = sql.SQL("({}) > {} AND {}").format(_keys(source), _key_row(source, "pos"), within)
    return within


def next_upper(conn, source: TableInfo, position: tuple | None, end: tuple, limit: int) -> tuple[tuple, bool]:
    """The last key of the next batch: the ``limit``-th key past the position, or the walk's end
    when fewer are left (then True: this batch ends the walk).

    Keys only, old or not, read from the key index alone: a batch covers a bounded stretch of
    the key however sparse the old rows in it are, and finding it costs no table read."""
    statement = sql.SQL("SELECT {keys} FROM {source} WHERE {within} ORDER BY {keys} OFFSET %(skip)s LIMIT 1").format(
        keys=_keys(source), source=source.ident, within=_range(source, after_key=position is not None, upper="end"))
    row = conn.execute(statement, {"skip": limit - 1, **key_params("end", end), **key_params("pos", position)}
                       ).fetchone()
    if row is None or tuple(row) == end:
        return end, True
    return tuple(row), False


def batch_params(cutoff, position: tuple | None, upper: tuple) -> dict:
    return {"cutoff": cutoff, **key_params("pos", position), **key_params("upper", upper)}


def batch_statement(source: TableInfo, archive: TableInfo, time_column: str, *, after_key: bool,
                    check: Check, skip_locked: bool = False,
                    kept: sql.Composable = NOTHING_KEPT, tally: sql.Composable | None = None,
                    children: tuple[ChildMove, ...] = ()) -> sql.Composed:
    """One batch: the rows older than the cutoff with keys past the position (``after_key``) up
    to the batch's last key, moved, except those ``kept`` holds back (a condition on the source
    row ``s``: rows other tables still reference); and the count and checksum of what left and
    of what arrived. Parameters: ``batch_params``."""
    cols = sql.SQL(", ").join(map(sql.Identifier, source.columns))
    old = sql.SQL("s.{} < %(cutoff)s AND NOT ({})").format(sql.Identifier(time_column), kept)
    within = _range(source, after_key=after_key, upper="upper")
    if skip_locked:
        # Lock exactly the old rows of the range, skipping any a writer holds, and delete those.
        doomed = sql.SQL(" AND ").join(sql.SQL("s.{k} = b.{k}").format(k=sql.Identifier(k)) for k in source.key)
        first = sql.SQL("batch AS (SELECT {keys} FROM {source} AS s WHERE {old} AND {within} "
                        "FOR UPDATE SKIP LOCKED), ").format(
            keys=_keys(source), source=source.ident, old=old, within=within)
        delete = sql.SQL("DELETE FROM {source} AS s USING batch AS b WHERE {doomed} RETURNING s.*").format(
            source=source.ident, doomed=doomed)
    else:
        # One index range scan deletes the old rows of the range, with no separate row locks.
        first = sql.SQL("")
        delete = sql.SQL("DELETE FROM {source} AS s WHERE {old} AND {within} RETURNING s.*").format(
            source=source.ident, old=old, within=within)
    arrived = sql.SQL(", ").join(map(sql.Identifier, check.columns))
    # ``tally``: a statement over ``moved`` (the ledger's count of this step, when the ledger is
    # in the same database), committed with the batch: the count can never disagree with the data.
    counted = sql.SQL(", tallied AS ({})").format(tally) if tally is not None else sql.SQL("")
    child_ctes, child_sums, child_froms = _child_ctes(list(children))
    return sql.SQL("""
        WITH {first}moved AS (
            {delete}
        ), arrived AS (
            INSERT INTO {archive} ({cols}) SELECT {cols} FROM moved RETURNING {arrived}
        ){counted}{child_ctes}
        SELECT m.n, m.h, a.n, a.h{child_sums}
        FROM (SELECT count(*) AS n, {moved_hash} AS h FROM moved AS m) AS m,
             (SELECT count(*) AS n, {arrived_hash} AS h FROM arrived AS a) AS a{child_froms}
    """).format(first=first, delete=delete, archive=archive.ident, cols=cols, arrived=arrived, counted=counted,
                moved_hash=check.hash("m"), arrived_hash=check.hash("a"), child_ctes=child_ctes,
                child_sums=child_sums, child_froms=child_froms)


def _one_batch(conn, statement, params, source: TableInfo, archive: TableInfo, max_ms: float,
               children: tuple[ChildMove, ...] = ()) -> tuple:
    """Run one batch in its own transaction; commit only when what left equals what arrived, for
    the source and for each child that goes along.

    The batch may take at most ``max_ms``: past that the server cancels it and the transaction
    rolls back, so no batch holds its row locks longer, whatever the disk does meanwhile. With
    children it runs in REPEATABLE READ: a foreign key's cascade then refuses (a serialization
    failure, retried) rather than touch a child row committed after the batch looked, which it
    did not archive."""
    with conn.transaction():
        if children:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{int(max_ms)}ms",))
        row = conn.execute(statement, params).fetchone()
        pairs = [(source, archive), *((c.table, c.archive) for c in children)]
        for i, (left_table, arrived_table) in enumerate(pairs):
            left, left_sum, arrived, arrived_sum = row[4 * i:4 * i + 4]
            if (left, left_sum) != (arrived, arrived_sum):
                raise ArchiveMismatch(
                    f"{left_table.qualified}: {left} rows left (checksum {left_sum}) but {arrived} arrived in "
                    f"{arrived_table.qualified} (checksum {arrived_sum}); the batch was rolled back")
    return row


def _paused(should_pause, pause_seconds: float, sleep, result: MoveResult) -> bool:
    reason = should_pause()
    if reason:
        log.info("Paused: %s; checking again in %.0fs", reason, pause_seconds)
        sleep(pause_seconds)
        result.paused_seconds += pause_seconds
    return bool(reason)


def _failed(result: MoveResult, exc: Exception, failures: int, size: int, batching, backoff: float) -> bool:
    """Count a batch that moved nothing; True when too many in a row failed and the run should stop."""
    waited = isinstance(exc, errors.LockNotAvailable)
    result.lock_timeouts += waited
    result.batch_timeouts += not waited
    if failures > MAX_FAILED_BATCHES:
        result.stopped = (f"{failures} batches in a row were not granted their locks or ran past "
                          f"{batching.max_batch_ms:.0f} ms; the next run continues")
        return True
    why = ("Lock not granted in time" if waited else
           "A row of the batch came to be referenced meanwhile" if isinstance(exc, errors.ForeignKeyViolation)
           else f"Batch cancelled at {batching.max_batch_ms:.0f} ms")
    log.info("%s; batch now %d rows, skipping locked rows, retrying in %.1fs", why, size, backoff)
    return False


def next_size(size: int, elapsed_ms: float, batching) -> int:
    """Aim the next batch at the target lock time: shrink at once, grow by at most 1.5x a step,
    so one slow moment (a checkpoint) does not make the next batch hold its locks too long."""
    factor = max(0.25, min(1.5, batching.target_ms / max(elapsed_ms, 1.0)))
    return int(max(batching.min_rows, min(batching.max_rows, size * factor)))


def move_rows(conn, source: TableInfo, archive: TableInfo, time_column: str, cutoff, *, batching,
              max_rows: int, deadline: float | None = None, should_pause: Callable[[], str | None] = lambda: None,
              pause_seconds: float = 30, sleep=time.sleep,
              progress: Callable[[MoveResult, int], None] | None = None, total_hint: int = 0,
              kept: sql.Composable = NOTHING_KEPT, tally: sql.Composable | None = None,
              children: tuple[ChildMove, ...] = ()) -> MoveResult:
    """Move rows of ``source`` older than ``cutoff`` into ``archive`` until none is left, ``max_rows``
    have moved or ``deadline`` (a ``time.monotonic()`` value) has passed; rows for which ``kept``
    holds (see ``tables.still_referenced``) stay. ``conn`` is autocommit, with ``lock_timeout``
    and ``statement_timeout`` already set."""
    check = choose_check(conn, source, archive)
    statements = {(after, skip): batch_statement(source, archive, time_column, after_key=after, check=check,
                                                 skip_locked=skip, kept=kept, tally=tally, children=children)
                  for after in (False, True) for skip in (False, True)}
    result, size, position = MoveResult(), batching.initial_rows, None
    end = walk_end(conn, source, time_column, cutoff)
    if end is None:
        return result
    skip_locked = False  # after a lock timeout, the next batch skips rows a writer holds
    behind: list[tuple | None] = []  # where the first batch that may have skipped rows began
    final_pass = False  # the pass back over skipped rows never waits for a lock
    started = time.monotonic()
    backoff, failures = 0.5, 0
    while result.rows < max_rows:
        if deadline is not None and time.monotonic() >= deadline:
            result.stopped = "time budget spent; the next run continues"
            break
        if _paused(should_pause, pause_seconds, sleep, result):
            continue
        limit = min(size, max_rows - result.rows)
        skipping = skip_locked or final_pass
        clock = time.perf_counter()
        try:
            upper, last_batch = next_upper(conn, source, position, end, limit)
            row = _one_batch(conn, statements[(position is not None, skipping)],
                             batch_params(cutoff, position, upper), source, archive, batching.max_batch_ms,
                             children)
        except (errors.LockNotAvailable, errors.QueryCanceled, errors.ForeignKeyViolation,
                errors.SerializationFailure) as exc:
            # A row a writer holds, a batch that would hold its locks too long, or a row another
            # table came to reference after the batch looked: nothing moved (the next batch's
            # look keeps the newly referenced row). Halve the batch, skip locked rows, back off.
            failures += 1
            size, skip_locked = max(batching.min_rows, size // 2), True
            behind[:] = behind or [position]
            if _failed(result, exc, failures, size, batching, backoff):
                break
            sleep(backoff)
            backoff = min(backoff * 2, 30)
            continue
        elapsed_ms = (time.perf_counter() - clock) * 1000
        backoff, skip_locked, failures = 0.5, False, 0
        position = upper
        result.record(row[0], limit, elapsed_ms)
        for i, child in enumerate(children):
            result.children[child.table.qualified] = result.children.get(child.table.qualified, 0) + row[4 + 4 * i]
        size = next_size(size, elapsed_ms, batching)
        result.seconds = time.monotonic() - started
        if progress:
            progress(result, total_hint)
        if batching.pause_ms and not last_batch:  # pacing: leave the database to the platform a while
            sleep(batching.pause_ms / 1000)
        if last_batch:
            if behind and not final_pass:  # rows may have been skipped: one more pass over them
                position, final_pass = behind[0], True
                continue
            break  # what is left older than the cutoff, a writer holds: the next run takes it
    else:
        result.stopped = f"the cap of {max_rows:,} rows per run was reached; the next run continues"
    result.seconds = time.monotonic() - started
    return result


def log_progress(result: MoveResult, total: int, *, every: int = 20) -> None:
    if result.batches % every:
        return
    rate = result.rows / result.seconds if result.seconds else 0.0
    eta = (total - result.rows) / rate if rate and total > result.rows else 0.0
    log.info("Moved %s rows in %d batches (%.0f rows/s, longest batch %.0f ms), ETA %.0fs",
             f"{result.rows:,}", result.batches, rate, result.longest_batch_ms, eta)
