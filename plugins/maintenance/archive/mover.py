"""The batched move: one statement per batch, in its own transaction, verified before commit.

Each batch walks the key: it finds the next ``n`` keys older than the cutoff past the last
position (an index range), deletes the rows of that key range from the source with
``RETURNING`` and inserts exactly those into the archive, all in one statement. The same
statement reports the count and a checksum of what left and of what arrived; the transaction
commits only when they agree. So at any instant, a crash, a kill or a dropped connection leaves
every row in exactly one of the two tables, and the next run simply continues.

What the checksum covers depends on the archive. When it cannot change a row on its way (every
column of the same type as the source's, no trigger, no rule), the rows that arrive are the rows
that left, value for value, and the checksum is over their keys: it proves the same rows left and
arrived, none lost, none twice. Otherwise every column of every row is hashed on both sides, so
a trigger or a conversion that changes a value is caught and the batch rolled back.

The batch size adapts so a batch holds its locks about ``target_ms``. A row a writer holds makes
the batch wait at most ``lock_timeout``; then the batch is halved and the next one skips locked
rows (``FOR UPDATE SKIP LOCKED``) instead of waiting: such rows are taken by a later pass or run.
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

    def record(self, rows: int, limit: int, elapsed_ms: float) -> None:
        self.rows += rows
        self.batches += 1
        self.longest_batch_ms = max(self.longest_batch_ms, elapsed_ms)
        self.batch_sizes.append(limit)

    def as_dict(self) -> dict:
        return {"rows": self.rows, "batches": self.batches, "seconds": round(self.seconds, 3),
                "rows_per_second": round(self.rows / self.seconds) if self.seconds else 0,
                "longest_batch_ms": round(self.longest_batch_ms, 1), "lock_timeouts": self.lock_timeouts,
                "batch_timeouts": self.batch_timeouts,
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


def batch_statement(source: TableInfo, archive: TableInfo, time_column: str, *, after_key: bool,
                    check: Check, skip_locked: bool = False) -> sql.Composed:
    """One batch: the next keys older than the cutoff past the position (``after_key``), their rows
    moved, and the count and checksum of both sides plus the batch's last key."""
    cols = sql.SQL(", ").join(map(sql.Identifier, source.columns))
    keys = sql.SQL(", ").join(map(sql.Identifier, source.key))
    placeholders = sql.SQL(", ").join(sql.Placeholder() for _ in source.key)
    position = sql.SQL(" AND ({}) > ({})").format(keys, placeholders) if after_key else sql.SQL("")
    last = sql.SQL(", ").join(
        sql.SQL("(SELECT {} FROM batch ORDER BY {} LIMIT 1)").format(
            sql.Identifier(k), sql.SQL(", ").join(sql.SQL("{} DESC").format(sql.Identifier(c)) for c in source.key))
        for k in source.key)
    if skip_locked:
        # Lock exactly the rows found, skipping any a writer holds, and delete those.
        chosen = sql.SQL("FOR UPDATE SKIP LOCKED")
        doomed = sql.SQL(" AND ").join(sql.SQL("s.{k} = b.{k}").format(k=sql.Identifier(k)) for k in source.key)
        delete = sql.SQL("DELETE FROM {source} AS s USING batch AS b WHERE {doomed} RETURNING s.*").format(
            source=source.ident, doomed=doomed)
    else:
        # Delete the key range the batch spans: one index range scan, no separate row locks.
        chosen = sql.SQL("")
        upper = sql.SQL("({}) <= ({})").format(keys, last)
        delete = sql.SQL("DELETE FROM {source} AS s WHERE {time} < %s{position} AND {upper} RETURNING s.*").format(
            source=source.ident, time=sql.Identifier(time_column), position=position, upper=upper)
    arrived = sql.SQL(", ").join(map(sql.Identifier, check.columns))
    return sql.SQL("""
        WITH batch AS (
            SELECT {keys} FROM {source} WHERE {time} < %s{position}
            ORDER BY {keys} LIMIT %s {chosen}
        ), moved AS (
            {delete}
        ), arrived AS (
            INSERT INTO {archive} ({cols}) SELECT {cols} FROM moved RETURNING {arrived}
        )
        SELECT (SELECT count(*) FROM moved), (SELECT {moved_hash} FROM moved AS m),
               (SELECT count(*) FROM arrived), (SELECT {arrived_hash} FROM arrived AS a), {last}
    """).format(keys=keys, source=source.ident, time=sql.Identifier(time_column), position=position, chosen=chosen,
                delete=delete, archive=archive.ident, cols=cols, arrived=arrived, moved_hash=check.hash("m"),
                arrived_hash=check.hash("a"), last=last)


def _params(cutoff, position, limit, *, skip_locked: bool):
    # The statement's placeholders: the batch's cutoff, key position (when any) and limit, then
    # for the key-range delete its own cutoff and position.
    found = (cutoff, *(position or ()), limit)
    return found if skip_locked else (*found, cutoff, *(position or ()))


def _one_batch(conn, statement, params, source: TableInfo, archive: TableInfo, max_ms: float) -> tuple:
    """Run one batch in its own transaction; commit only when what left equals what arrived.

    The batch may take at most ``max_ms``: past that the server cancels it and the transaction
    rolls back, so no batch holds its row locks longer, whatever the disk does meanwhile."""
    with conn.transaction():
        conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{int(max_ms)}ms",))
        row = conn.execute(statement, params).fetchone()
        left, left_sum, arrived, arrived_sum = row[:4]
        if (left, left_sum) != (arrived, arrived_sum):
            raise ArchiveMismatch(
                f"{source.qualified}: {left} rows left the source (checksum {left_sum}) but {arrived} "
                f"arrived in {archive.qualified} (checksum {arrived_sum}); the batch was rolled back")
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
    log.info("%s; batch now %d rows, skipping locked rows, retrying in %.1fs",
             "Lock not granted in time" if waited else f"Batch cancelled at {batching.max_batch_ms:.0f} ms",
             size, backoff)
    return False


def next_size(size: int, elapsed_ms: float, batching) -> int:
    """Aim the next batch at the target lock time: shrink at once, grow by at most 1.5x a step,
    so one slow moment (a checkpoint) does not make the next batch hold its locks too long."""
    factor = max(0.25, min(1.5, batching.target_ms / max(elapsed_ms, 1.0)))
    return int(max(batching.min_rows, min(batching.max_rows, size * factor)))


def move_rows(conn, source: TableInfo, archive: TableInfo, time_column: str, cutoff, *, batching,
              max_rows: int, deadline: float | None = None, should_pause: Callable[[], str | None] = lambda: None,
              pause_seconds: float = 30, sleep=time.sleep,
              progress: Callable[[MoveResult, int], None] | None = None, total_hint: int = 0) -> MoveResult:
    """Move rows of ``source`` older than ``cutoff`` into ``archive`` until none is left, ``max_rows``
    have moved or ``deadline`` (a ``time.monotonic()`` value) has passed. ``conn`` is autocommit,
    with ``lock_timeout`` and ``statement_timeout`` already set."""
    check = choose_check(conn, source, archive)
    statements = {(after, skip): batch_statement(source, archive, time_column, after_key=after, check=check,
                                                 skip_locked=skip)
                  for after in (False, True) for skip in (False, True)}
    result, size, position = MoveResult(), batching.initial_rows, None
    skip_locked = False  # after a lock timeout, the next batch skips rows a writer holds
    final_pass = False  # the pass from the start for rows skipped earlier never waits for a lock
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
            row = _one_batch(conn, statements[(position is not None, skipping)],
                             _params(cutoff, position, limit, skip_locked=skipping), source, archive,
                             batching.max_batch_ms)
        except (errors.LockNotAvailable, errors.QueryCanceled) as exc:
            # A row a writer holds, or a batch that would hold its locks too long: nothing moved.
            # Halve the batch, skip locked rows next time, and back off.
            failures += 1
            size, skip_locked = max(batching.min_rows, size // 2), True
            if _failed(result, exc, failures, size, batching, backoff):
                break
            sleep(backoff)
            backoff = min(backoff * 2, 30)
            continue
        elapsed_ms = (time.perf_counter() - clock) * 1000
        backoff, skip_locked, failures = 0.5, False, 0
        left, last = row[0], tuple(row[4:])
        if last[0] is None:  # no key older than the cutoff past the position: the pass is over
            if position is not None and (result.lock_timeouts or result.batch_timeouts) and not final_pass:
                position, final_pass = None, True  # rows skipped behind us: one more pass from the start
                continue
            break  # what is left older than the cutoff, a writer holds: the next run takes it
        position = last
        result.record(left, limit, elapsed_ms)
        size = next_size(size, elapsed_ms, batching)
        result.seconds = time.monotonic() - started
        if progress:
            progress(result, total_hint)
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
