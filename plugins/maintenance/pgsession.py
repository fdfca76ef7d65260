"""The one way this project opens a PostgreSQL session: the provider's PostgresHook, in
autocommit (VACUUM and the CONCURRENTLY forms cannot run in a transaction, and every ledger
record stands on its own), set up by the caller, closed whatever happens."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def session(conn_id: str, *, setup=None):
    """An autocommit psycopg connection of the Airflow connection ``conn_id``. ``setup(conn)``
    runs first (session limits, a time zone); the connection is closed at the end."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    conn.autocommit = True
    try:
        if setup is not None:
            setup(conn)
        yield conn
    finally:
        conn.close()
