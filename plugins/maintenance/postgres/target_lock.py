"""One actor per target: an advisory lock in the target database, whoever runs the work.

Airflow's ``max_active_runs`` does not keep a backfill from overlapping a scheduled run, and
pools are per Airflow installation; two actors on one table must still never work it at once.
Each mutating step on a table holds a session-level advisory lock keyed by the table's ledger
name (``conn_id:schema.table``) in the database that holds the table, so the lock holds across
processes, workers and machines, and ends with the session if the actor dies. A second actor
waits up to the policy's budget, then leaves the table alone with the holder named (its
``application_name`` says which DAG run and task it is).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from psycopg import sql

_NAMESPACE = 7_345_003  # the first key of every maintenance target lock


class TargetBusy(RuntimeError):
    """Another actor holds the target; the message names it."""


def holder_of(conn, target: str) -> str:
    row = conn.execute("""
        SELECT a.application_name, a.pid, a.client_addr, a.backend_start
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s
          AND l.objid::bigint = (hashtext(%s)::bigint & 4294967295) AND l.objsubid = 2
        LIMIT 1""", (_NAMESPACE, target)).fetchone()
    if row is None:
        return "an actor that has just let go"
    name, pid, addr, since = row
    return f"{name or 'a session'} (pid {pid}{f' from {addr}' if addr else ''}, since {since:%Y-%m-%d %H:%M:%S %Z})"


@contextmanager
def target_lock(conn, target: str, *, holder: str, wait_s: float, poll_s: float = 1.0, sleep=time.sleep):
    """Hold ``target`` for the work inside; raise TargetBusy, naming the holder, when another
    actor keeps it longer than ``wait_s``. ``conn`` is the autocommit session doing the work."""
    conn.execute(sql.SQL("SET application_name = {}").format(sql.Literal(holder[:63])))
    deadline = time.monotonic() + wait_s
    while not conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_NAMESPACE, target)).fetchone()[0]:
        if time.monotonic() >= deadline:
            raise TargetBusy(f"{target} is being maintained by {holder_of(conn, target)}; waited {wait_s:g}s, "
                             "left alone this time")
        sleep(poll_s)
    try:
        yield
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (_NAMESPACE, target))
