"""The ledger from inside a task: its connection, its schema, its task key."""

from __future__ import annotations

from contextlib import contextmanager

from maintenance.clock import run_date
from maintenance.ledger.schema import ensure_schema
from maintenance.ledger.store import Ledger, TaskKey

# Databases whose ledger schema this process has already created or migrated.
_READY: set[tuple] = set()


def task_key(context, *, dry_run: bool = False) -> TaskKey:
    from maintenance.form import RunForm

    ti = context["ti"]
    forced = RunForm.of(context, strict=False).force_reason
    return TaskKey(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, try_number=ti.try_number,
                   map_index=-1 if getattr(ti, "map_index", None) is None else ti.map_index,
                   logical_date=run_date(context), dry_run=dry_run, forced_reason=forced or None)


@contextmanager
def ledger_connection(policy):
    """An autocommit psycopg connection to the ledger, its schema created or migrated."""
    from maintenance.pgsession import session

    schema = policy.ledger.schema_name
    with session(policy.connections.ledger) as conn:
        # Keyed by where the connection really points: a connection id can be repointed.
        where = (conn.info.host, conn.info.port, conn.info.dbname, schema)
        if where not in _READY:
            ensure_schema(conn, schema)
            _READY.add(where)
        yield conn


def window_probe(policy):
    """Is the policy's planned window open now? For the actions that need it (maintenance.actions)."""
    from maintenance import clock
    from maintenance.calendar import MaintenanceCalendar

    calendar = MaintenanceCalendar.from_policy(policy)
    return lambda: calendar.window_at(clock.now()) is not None


@contextmanager
def open_ledger(context, policy, *, dry_run: bool = False, critical: bool = False):
    """The task's ledger. For critical work, a ledger whose database cannot be reached is no
    reason to stop: its records are spooled (maintenance.ledger.spool) until a later task writes
    them. Whoever reaches the ledger first writes what is spooled."""
    import logging
    from contextlib import ExitStack

    import psycopg

    from maintenance.ledger import spool

    key, schema, folder = task_key(context, dry_run=dry_run), policy.ledger.schema_name, spool.spool_folder(policy)
    with ExitStack() as stack:
        try:
            conn = stack.enter_context(ledger_connection(policy))
        except psycopg.OperationalError as exc:
            if not critical:
                raise
            reason = f"the ledger ({policy.connections.ledger}) cannot be reached: {str(exc).strip()[:300]}"
            logging.getLogger(__name__).warning("%s; this task's records are spooled in %s", reason, folder)
            spooled = spool.SpooledLedger(folder, schema, key, reason)
            spooled.in_window = window_probe(policy)
            yield spooled
            return
        try:
            spool.replay(conn, schema, folder)
        except Exception as exc:  # the spool waits for the next task; this one goes on
            logging.getLogger(__name__).warning("Spooled ledger records not written yet: %s", exc)
        ledger = Ledger(conn, schema, key)
        ledger.in_window = window_probe(policy)
        yield ledger
