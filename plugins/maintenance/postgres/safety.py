"""Running one maintenance statement without hurting the platform.

A statement that needs a lock first waits at most ``lock_timeout``: queuing
longer behind a long transaction would make every later query queue behind us.
When the lock is not granted in time the statement is retried after a pause
that doubles each time, up to the policy's number of retries, then given up
with an error that says so. ``statement_timeout`` bounds the whole statement.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from psycopg import errors, sql

log = logging.getLogger(__name__)


class LockBudgetExceeded(RuntimeError):
    """The lock was not granted within the policy's timeout and retries."""


@dataclass
class Outcome:
    seconds: float
    lock_wait_ms: float
    attempts: int
    rowcount: int | None = None


def apply_session_limits(conn, safety) -> None:
    """Session settings for maintenance statements (autocommit connection)."""
    conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(f"{safety.statement_timeout_s}s")))
    conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{safety.lock_timeout_ms}ms")))
    conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(safety.maintenance_work_mem)))
    conn.execute(sql.SQL("SET work_mem = {}").format(sql.Literal(safety.work_mem)))
    conn.execute(sql.SQL("SET max_parallel_maintenance_workers = {}").format(
        sql.Literal(safety.max_parallel_maintenance_workers)))
    conn.execute("SET application_name = 'pathfinity-maintenance'")


def run_guarded(conn, statement: sql.Composable, safety, *, sleep=time.sleep, on_retry=None) -> Outcome:
    """Run ``statement`` under the policy's lock budget; retry lock timeouts with backoff.

    ``on_retry`` cleans up what a failed attempt left (e.g. an invalid index copy).
    """
    started = time.perf_counter()
    lock_wait = 0.0
    pause = safety.lock_retry_backoff_s
    for attempt in range(1, safety.lock_retries + 2):
        attempt_started = time.perf_counter()
        try:
            cur = conn.execute(statement)
            return Outcome(time.perf_counter() - started, lock_wait * 1000, attempt,
                           cur.rowcount if cur.rowcount >= 0 else None)
        except errors.LockNotAvailable:
            lock_wait += time.perf_counter() - attempt_started
            if attempt > safety.lock_retries:
                break
            log.info("Lock not granted within %sms (attempt %s); retrying in %.1fs",
                     safety.lock_timeout_ms, attempt, pause)
            if on_retry:
                on_retry()
            sleep(pause)
            pause *= 2
    raise LockBudgetExceeded(
        f"gave up after {safety.lock_retries + 1} attempts: lock not granted within "
        f"{safety.lock_timeout_ms}ms each ({lock_wait:.1f}s waited in all)")
