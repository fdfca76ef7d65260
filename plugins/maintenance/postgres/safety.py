"""Running one maintenance statement without hurting the platform.

A statement that needs a lock first waits at most ``lock_timeout``: queuing
longer behind a long transaction would make every later query queue behind us.
When the lock is not granted in time the statement is retried after a pause
that doubles each time, up to the policy's number of retries, then given up
with an error that says so. ``statement_timeout`` bounds the whole statement.
A statement that takes an exclusive lock is not even tried while a long
transaction holds a lock on its table: it could not get it in time anyway, and
meanwhile every writer of the table would wait behind it.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
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


def session_settings(safety) -> dict[str, str]:
    """What a maintenance session sets besides its timeouts: the memory its sorts and builds may
    use, no parallel workers (a parallel build takes every core from the platform's queries), and
    VACUUM and ANALYZE paced as autovacuum paces them (a manual VACUUM runs unpaced by default,
    taking the disk from the writers for as long as it runs)."""
    return {"maintenance_work_mem": safety.maintenance_work_mem, "work_mem": safety.work_mem,
            "max_parallel_maintenance_workers": str(safety.max_parallel_maintenance_workers),
            "vacuum_cost_delay": f"{safety.vacuum_cost_delay_ms:g}ms",
            "vacuum_cost_limit": str(safety.vacuum_cost_limit)}


def apply_session_limits(conn, safety) -> None:
    """Session settings for maintenance statements (autocommit connection)."""
    timeouts = {"statement_timeout": f"{safety.statement_timeout_s}s", "lock_timeout": f"{safety.lock_timeout_ms}ms"}
    for name, value in (timeouts | session_settings(safety)).items():
        conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
    conn.execute("SET application_name = 'pathfinity-maintenance'")


@contextmanager
def statement_timeout(conn, seconds: int):
    """``statement_timeout`` at ``seconds`` for the statements inside, then back to what it was.
    A VACUUM cannot run in a transaction block, so ``SET LOCAL`` is not an option."""
    previous = conn.execute("SHOW statement_timeout").fetchone()[0]
    conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(f"{seconds}s")))
    try:
        yield
    finally:
        if not conn.closed:
            conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(previous)))


def tool_options(safety) -> str:
    """``session_settings`` for the sessions of a libpq tool (its ``PGOPTIONS``). The timeouts are
    left out: a tool such as pg_repack runs its own lock loop with them."""
    return " ".join(f"-c {name}={value}" for name, value in session_settings(safety).items())


class NotGranted(Exception):
    """An attempt did not get its lock (e.g. pg_repack gave up waiting); the budget decides what next."""


def long_lock_holders(conn, schema: str, name: str, older_than_ms: int) -> list[str]:
    """Other sessions holding any lock on the table in a transaction open longer than
    ``older_than_ms``. An exclusive lock requested now would queue behind them, and every
    reader and writer that comes after would queue behind that request."""
    rows = conn.execute("""
        SELECT DISTINCT a.pid, coalesce(a.state, ''), extract(epoch FROM now() - a.xact_start)::int,
               left(coalesce(a.query, ''), 80)
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'relation' AND l.relation = %s::regclass AND l.granted
          AND l.pid <> pg_backend_pid() AND a.xact_start < now() - %s * interval '1 millisecond'
        ORDER BY 1""", (sql.Identifier(schema, name).as_string(conn), older_than_ms)).fetchall()
    return [f"pid {pid} ({state}, transaction open {age}s: {query})" for pid, state, age, query in rows]


def with_lock_budget(attempt, safety, *, sleep=time.sleep, on_retry=None, queue_check=None):
    """Call ``attempt`` until it gets its lock, under the policy's budget: a lock not granted
    within ``lock_timeout`` (or ``NotGranted``) is retried after a pause that doubles, up to the
    policy's retries, then given up with ``LockBudgetExceeded``.

    ``queue_check`` returns why an attempt would queue behind a long transaction (or nothing):
    then the attempt is not made at all, so no one waits behind a request that cannot be
    granted soon. Returns what ``attempt`` returned and the ``Outcome``."""
    started = time.perf_counter()
    lock_wait = 0.0
    pause = safety.lock_retry_backoff_s
    reason = ""
    for number in range(1, safety.lock_retries + 2):
        held = queue_check() if queue_check else None
        if held:
            reason = f"not tried: a long transaction holds a lock on the table ({'; '.join(held)})"
        else:
            attempt_started = time.perf_counter()
            try:
                value = attempt()
                return value, Outcome(time.perf_counter() - started, lock_wait * 1000, number)
            except errors.LockNotAvailable:
                reason = f"lock not granted within {safety.lock_timeout_ms}ms"
            except NotGranted as exc:
                reason = str(exc)
            lock_wait += time.perf_counter() - attempt_started
        if number > safety.lock_retries:
            break
        log.info("%s (attempt %s); retrying in %.1fs", reason, number, pause)
        if on_retry:
            on_retry()
        sleep(pause)
        pause *= 2
    raise LockBudgetExceeded(
        f"gave up after {safety.lock_retries + 1} attempts: {reason} ({lock_wait:.1f}s waited in all)")


def run_guarded(conn, statement: sql.Composable, safety, *, sleep=time.sleep, on_retry=None,
                exclusive_on: tuple[str, str] | None = None) -> Outcome:
    """Run ``statement`` under the policy's lock budget (``with_lock_budget``).

    ``on_retry`` cleans up what a failed attempt left (e.g. an invalid index copy).
    ``exclusive_on`` (schema, table) is for statements that take an exclusive lock on that
    table (VACUUM FULL, a plain REFRESH): they are not even tried while a long transaction
    holds a lock on it, since writers would queue behind them for the whole lock timeout.
    """
    queue_check = (lambda: long_lock_holders(conn, *exclusive_on, safety.lock_timeout_ms)) if exclusive_on else None
    cur, outcome = with_lock_budget(lambda: conn.execute(statement), safety, sleep=sleep, on_retry=on_retry,
                                    queue_check=queue_check)
    outcome.rowcount = cur.rowcount if cur.rowcount >= 0 else None
    return outcome


def limited_session(conn_id: str, safety, *, timezone: str | None = None):
    """A session of ``conn_id`` (maintenance.pgsession) under the policy's session limits and,
    when given, read in ``timezone``: times without a zone then mean the same everywhere."""
    from maintenance.pgsession import session

    def setup(conn) -> None:
        apply_session_limits(conn, safety)
        if timezone:
            conn.execute("SELECT set_config('TimeZone', %s, false)", (timezone,))

    return session(conn_id, setup=setup)
