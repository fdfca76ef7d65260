"""Where a PostgreSQL connection points, for libpq tools and extra sessions.

Airflow connections hold the address; the command-line tools (pg_dump, pg_restore,
pg_repack) take it through libpq's environment variables, so a password never
appears on a command line.
"""

from __future__ import annotations

import os


def from_airflow(conn_id: str) -> dict:
    """host, port, user, password and dbname of an Airflow PostgreSQL connection."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    info = PostgresHook.get_connection(conn_id)
    return {"host": info.host or "127.0.0.1", "port": int(info.port or 5432), "user": info.login or "postgres",
            "password": info.password or "", "dbname": info.schema or "postgres"}


def libpq_env(conninfo: dict, **overrides) -> dict[str, str]:
    """The process environment for a libpq tool pointed at ``conninfo``."""
    info = conninfo | overrides
    return os.environ | {"PGHOST": str(info["host"]), "PGPORT": str(info["port"]), "PGUSER": str(info["user"]),
                         "PGPASSWORD": str(info.get("password") or ""), "PGDATABASE": str(info["dbname"])}


def connect(conninfo: dict, **overrides):
    """A new autocommit psycopg connection to ``conninfo`` (``dbname=...`` to switch databases)."""
    import psycopg

    return psycopg.connect(**(conninfo | overrides), autocommit=True)
