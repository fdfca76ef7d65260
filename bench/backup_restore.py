"""The weekly restore test against a plain parallel pg_restore of the same dump.

Starts its own PostgreSQL and moto S3 server, builds a platform-shaped database of
about 1 GB (tables plus indexes), makes a backup with the project's ``produce`` (dump
and manifest), then in the same run:

- baseline: ``pg_restore -j 2`` of the dump file into a fresh database;
- project: ``restore_test`` (download, ``pg_restore -j 2``, every table's count and
  checksum against the manifest, ``bt_index_check`` of every btree index, drop).

It prints each phase and the ratio (restore plus checks, against the baseline; the
download from S3 is shown apart, the baseline reads a local file).

    .venv/bin/python -m bench.backup_restore [rows]
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, date, datetime

import boto3
import psycopg
from maintenance.backups import store, tools
from maintenance.backups.produce import produce
from maintenance.backups.restore import restore_test
from maintenance.postgres.conninfo import libpq_env

from bench.scratch import scratch_postgres
from devtools import servers

BUILD = """
CREATE TABLE learning_sessions (
    id bigint PRIMARY KEY, student_id bigint NOT NULL, career_id integer NOT NULL,
    created_at timestamptz NOT NULL, ended_at timestamptz, duration_s integer, payload jsonb);
INSERT INTO learning_sessions
SELECT g, g % 200000, g % 400, timestamptz '2025-01-01' + g * interval '3 seconds',
       timestamptz '2025-01-01' + g * interval '3 seconds' + interval '20 minutes', g % 3600,
       jsonb_build_object('step', g % 50, 'score', (g % 1000) / 10.0, 'path', 'core')
FROM generate_series(1, {rows}) g;
CREATE INDEX learning_sessions_created_at_idx ON learning_sessions (created_at);
CREATE INDEX learning_sessions_student_idx ON learning_sessions (student_id);
CREATE TABLE pathiq_metrics (
    id bigint PRIMARY KEY, student_id bigint NOT NULL, metric text NOT NULL, value double precision NOT NULL,
    "timestamp" timestamptz NOT NULL);
INSERT INTO pathiq_metrics SELECT g, g % 200000, (ARRAY['focus','pace','mastery'])[g % 3 + 1], g / 7.0,
       timestamptz '2025-01-01' + g * interval '5 seconds' FROM generate_series(1, {rows} / 2) g;
CREATE INDEX pathiq_metrics_timestamp_idx ON pathiq_metrics ("timestamp");
CREATE TABLE career_selections (
    id bigint PRIMARY KEY, student_id bigint NOT NULL, career_id integer NOT NULL,
    status text NOT NULL, selected_at timestamptz NOT NULL);
INSERT INTO career_selections
SELECT g, g % 200000, g % 400, 'active', timestamptz '2025-01-01' + g * interval '1 minute'
FROM generate_series(1, {rows} / 10) g;
VACUUM ANALYZE;
"""


def main(rows: int = 6_000_000) -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    root, server = scratch_postgres("backup")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=(port := servers.free_port()), verbose=False)
    moto.start()
    try:
        admin = {"host": "127.0.0.1", "port": server.port, "user": "postgres", "password": "", "dbname": "postgres"}
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE platform")
        source = admin | {"dbname": "platform"}
        started = time.perf_counter()
        with psycopg.connect(**source, autocommit=True) as conn:
            for statement in BUILD.format(rows=rows).split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        print(f"database: {size / 2**30:.2f} GB ({rows:,} sessions), built in {time.perf_counter() - started:.0f}s")

        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
        key = store.dump_key("postgres/", "platform_db", date(2026, 11, 26), "platform")
        started = time.perf_counter()
        manifest = produce(source, s3, bucket="bench-backups", key=key, conn_id="platform_db", compression=6, jobs=2)
        print(f"backup: {manifest['dump']['bytes'] / 2**20:.0f} MB dump with manifest in "
              f"{time.perf_counter() - started:.1f}s (pg_dump alone {manifest['dump_seconds']:.1f}s)")
        backup = store.list_backups(s3, "bench-backups", "postgres/", "platform_db")[-1]

        # Baseline: the plain parallel restore of the same file.
        local = store.download(s3, backup, root / "dump")
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE baseline TEMPLATE template0")
        pg_restore = tools.binary("pg_restore", 15)
        started = time.perf_counter()
        subprocess.run([pg_restore, "--no-owner", "--no-privileges", "--jobs=2", "--dbname=baseline", str(local)],
                       env=libpq_env(admin, dbname="baseline"), check=True)
        baseline = time.perf_counter() - started
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute("DROP DATABASE baseline")
        print(f"baseline pg_restore -j 2: {baseline:.1f}s")

        result = restore_test(s3, backup, target=admin, scratch="maint_restore_bench", jobs=2, now=datetime.now(UTC))
        assert not result.problems, result.problems
        t = result.timings
        project = t["restore"] + t["checksums"] + t["amcheck"]
        print(f"project restore test: download {t['download']:.1f}s, restore {t['restore']:.1f}s, "
              f"checksums {t['checksums']:.1f}s ({result.tables_checked} tables), amcheck {t['amcheck']:.1f}s "
              f"({result.indexes_checked} indexes), total {t['total']:.1f}s")
        print(f"ratio (restore + checks) / baseline: {project / baseline:.2f}x (goal <= 1.5x); "
              f"with the download: {(project + t['download']) / baseline:.2f}x")
    finally:
        moto.stop()
        server.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6_000_000)
