"""Where a PostgreSQL connection points, for libpq tools and extra sessions.

Airflow connections hold the address; the command-line tools (pg_dump, pg_restore,
pg_repack) take it through libpq's environment variables, so a password never
appears on a command line.
"""

from __future__ import annotations

import os

# The connection's libpq settings the tools must get too (a TLS-only server refuses a tool that
# connects in clear), as the connection's extra names them, and libpq's variable for each.
TLS_AND_SESSION = {"sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT",
                   "sslkey": "PGSSLKEY", "sslcrl": "PGSSLCRL", "options": "PGOPTIONS",
                   "connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME",
                   "target_session_attrs": "PGTARGETSESSIONATTRS"}


def from_airflow(conn_id: str) -> dict:
    """host, port, user, password and dbname of an Airflow PostgreSQL connection, and the libpq
    settings of its extra (TLS, options, timeouts), so every session and tool connects alike."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    info = PostgresHook.get_connection(conn_id)
    extra = info.extra_dejson or {}
    return {"host": info.host or "127.0.0.1", "port": int(info.port or 5432), "user": info.login or "postgres",
            "password": info.password or "", "dbname": info.schema or "postgres",
            **{key: str(extra[key]) for key in TLS_AND_SESSION if extra.get(key) not in (None, "")}}


def libpq_env(conninfo: dict, **overrides) -> dict[str, str]:
    """The process environment for a libpq tool pointed at ``conninfo``, TLS and options included."""
    info = conninfo | overrides
    inherited = {k: v for k, v in os.environ.items() if k not in TLS_AND_SESSION.values()}
    return inherited | {"PGHOST": str(info["host"]), "PGPORT": str(info["port"]), "PGUSER": str(info["user"]),
                        "PGPASSWORD": str(info.get("password") or ""), "PGDATABASE": str(info["dbname"]),
                        **{var: str(info[key]) for key, var in TLS_AND_SESSION.items() if key in info}}


def connect(conninfo: dict, **overrides):
    """A new autocommit psycopg connection to ``conninfo`` (``dbname=...`` to switch databases)."""
    import psycopg

    return psycopg.connect(**(conninfo | overrides), autocommit=True)
