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
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn_id, schema = policy.connections.ledger, policy.ledger.schema_name
    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    conn.autocommit = True
    try:
        # Keyed by where the connection really points: a connection id can be repointed.
        where = (conn.info.host, conn.info.port, conn.info.dbname, schema)
        if where not in _READY:
            ensure_schema(conn, schema)
            _READY.add(where)
        yield conn
    finally:
        conn.close()


@contextmanager
def open_ledger(context, policy, *, dry_run: bool = False):
    with ledger_connection(policy) as conn:
        yield Ledger(conn, policy.ledger.schema_name, task_key(context, dry_run=dry_run))
