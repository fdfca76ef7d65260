"""The batched move: one statement per batch, in its own transaction, verified before commit.

Each batch picks the next rows older than the cutoff in key order (``FOR UPDATE SKIP
LOCKED``: a row a writer holds is left for the next run rather than waited for), deletes
them from the source with ``RETURNING`` and inserts exactly those into the archive, all in
one statement. The same statement reports the count and a checksum of what left and of
what arrived; the transaction commits only when they agree. So at any instant, a crash,
a kill or a dropped connection leaves every row in exactly one of the two tables, and the
next run simply continues.

The batch size adapts so a batch holds its locks about ``target_ms``; a lock not granted
within ``lock_timeout`` halves the batch and retries after a pause.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from psycopg import errors, sql

from maintenance.archive.tables import TableInfo

log = logging.getLogger(__name__)


class ArchiveMismatch(RuntimeError):
    """What left the source is not what arrived in the archive: the batch was rolled back."""


@dataclass
class MoveResult:
    rows: int = 0
    batches: int = 0
    seconds: float = 0.0
    longest_batch_ms: float = 0.0
    lock_timeouts: int = 0
    paused_seconds: float = 0.0
    stopped: str | None = None  # why it stopped before moving everything (cap, time budget)
    batch_sizes: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"rows": self.rows, "batches": self.batches, "seconds": round(self.seconds, 3),
                "rows_per_second": round(self.rows / self.seconds) if self.seconds else 0,
                "longest_batch_ms": round(self.longest_batch_ms, 1), "lock_timeouts": self.lock_timeouts,
                "paused_seconds": round(self.paused_seconds, 1), "stopped": self.stopped}


def hashable_by_type(conn, source: TableInfo) -> bool:
    """Can rows be hashed field by field (``hash_record_extended``, PostgreSQL 14+)?

    It needs a hash function for every column's type (json, point and a few others have
    none); it then skips printing each row as text, the costly part of the check. One row
    is enough to probe: the function looks up every column's hash function before any value.
    With no row at all there is nothing to move.
    """
    if conn.info.server_version < 140000:
        return False
    probe = sql.SQL("SELECT hash_record_extended(ROW({}), 0) FROM {} AS r LIMIT 1").format(
        sql.SQL(", ").join(sql.Identifier("r", c) for c in source.columns), source.ident)
    try:
        with conn.transaction():
            conn.execute(probe)
        return True
    except errors.Error:
        return False


def batch_statement(source: TableInfo, archive: TableInfo, time_column: str, *, after_key: bool,
                    by_type: bool = False) -> sql.Composed:
    cols = sql.SQL(", ").join(map(sql.Identifier, source.columns))
    keys = sql.SQL(", ").join(map(sql.Identifier, source.key))

    def row_hash(alias: str) -> sql.Composed:
        fields = sql.SQL(", ").join(sql.Identifier(alias, c) for c in source.columns)
        if by_type:
            return sql.SQL("coalesce(sum(hash_record_extended(ROW({}), 0)), 0)").format(fields)
        return sql.SQL("coalesce(sum(hashtextextended(ROW({})::text, 0)), 0)").format(fields)

    match = sql.SQL(" AND ").join(
        sql.SQL("s.{k} = b.{k}").format(k=sql.Identifier(k)) for k in source.key)
    last = sql.SQL(", ").join(
        sql.SQL("(SELECT {} FROM moved ORDER BY {} LIMIT 1)").format(
            sql.Identifier(k), sql.SQL(", ").join(sql.SQL("{} DESC").format(sql.Identifier(c)) for c in source.key))
        for k in source.key)
    position = sql.SQL(" AND ({}) > ({})").format(keys, sql.SQL(", ").join(
        sql.Placeholder() for _ in source.key)) if after_key else sql.SQL("")
    return sql.SQL("""
        WITH batch AS (
            SELECT {keys} FROM {source} WHERE {time} < %s{position}
            ORDER BY {keys} LIMIT %s FOR UPDATE SKIP LOCKED
        ), moved AS (
            DELETE FROM {source} AS s USING batch AS b WHERE {match} RETURNING s.*
        ), arrived AS (
            INSERT INTO {archive} ({cols}) SELECT {cols} FROM moved RETURNING *
        )
        SELECT (SELECT count(*) FROM moved), (SELECT {moved_hash} FROM moved AS m),
               (SELECT count(*) FROM arrived), (SELECT {arrived_hash} FROM arrived AS a), {last}
    """).format(keys=keys, source=source.ident, time=sql.Identifier(time_column), position=position,
                match=match, archive=archive.ident, cols=cols, moved_hash=row_hash("m"),
                arrived_hash=row_hash("a"), last=last)


def _params(cutoff, position, limit):
    # The statement's placeholders: the cutoff, the key position (when any), the limit.
    return (cutoff, *(position or ()), limit)


def _one_batch(conn, statement, params, source: TableInfo, archive: TableInfo) -> tuple:
    """Run one batch in its own transaction; commit only when what left equals what arrived."""
    with conn.transaction():
        row = conn.execute(statement, params).fetchone()
        left, left_sum, arrived, arrived_sum = row[:4]
        if (left, left_sum) != (arrived, arrived_sum):
            raise ArchiveMismatch(
                f"{source.qualified}: {left} rows left the source (checksum {left_sum}) but {arrived} "
                f"arrived in {archive.qualified} (checksum {arrived_sum}); the batch was rolled back")
    return row


def move_rows(conn, source: TableInfo, archive: TableInfo, time_column: str, cutoff, *, batching,
              max_rows: int, deadline: float | None = None, should_pause: Callable[[], str | None] = lambda: None,
              pause_seconds: float = 30, sleep=time.sleep,
              progress: Callable[[MoveResult, int], None] | None = None, total_hint: int = 0) -> MoveResult:
    """Move rows of ``source`` older than ``cutoff`` into ``archive`` until none is left, ``max_rows``
    have moved or ``deadline`` (a ``time.monotonic()`` value) has passed. ``conn`` is autocommit,
    with ``lock_timeout`` and ``statement_timeout`` already set."""
    by_type = hashable_by_type(conn, source)
    first = batch_statement(source, archive, time_column, after_key=False, by_type=by_type)
    then = batch_statement(source, archive, time_column, after_key=True, by_type=by_type)
    result, size, position = MoveResult(), batching.initial_rows, None
    started = time.monotonic()
    backoff = 0.5
    while result.rows < max_rows:
        if deadline is not None and time.monotonic() >= deadline:
            result.stopped = "time budget spent; the next run continues"
            break
        reason = should_pause()
        if reason:
            log.info("Paused: %s; checking again in %.0fs", reason, pause_seconds)
            sleep(pause_seconds)
            result.paused_seconds += pause_seconds
            continue
        limit = min(size, max_rows - result.rows)
        clock = time.perf_counter()
        try:
            row = _one_batch(conn, then if position else first, _params(cutoff, position, limit), source, archive)
        except errors.LockNotAvailable:
            result.lock_timeouts += 1
            size = max(batching.min_rows, size // 2)
            log.info("Lock not granted in time; batch now %d rows, retrying in %.1fs", size, backoff)
            sleep(backoff)
            backoff = min(backoff * 2, 30)
            continue
        elapsed_ms = (time.perf_counter() - clock) * 1000
        backoff = 0.5
        left = row[0]
        if left == 0:
            if position is None:
                break  # nothing older than the cutoff is left (rows a writer holds wait for the next run)
            position = None  # skipped locked rows behind us: one more pass from the start
            continue
        position = tuple(row[4:])
        result.rows += left
        result.batches += 1
        result.longest_batch_ms = max(result.longest_batch_ms, elapsed_ms)
        result.batch_sizes.append(limit)
        # Aim the next batch at the target lock time: shrink at once, grow by at most 1.5x a step,
        # so one slow moment (a checkpoint) does not make the next batch hold its locks too long.
        factor = max(0.25, min(1.5, batching.target_ms / max(elapsed_ms, 1.0)))
        size = int(max(batching.min_rows, min(batching.max_rows, size * factor)))
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
