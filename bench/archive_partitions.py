"""Archiving a range-partitioned table's old partitions: time against their size.

Starts its own PostgreSQL; for each size, builds a table of 12 monthly partitions (no
default partition, so detaching is CONCURRENTLY) holding ``rows`` rows each, and times the
project's ``archive_whole_partitions`` with a cutoff that makes 6 of them wholly old.
Goal (issue: archiving): under 1 second whatever their size.

    PYTHONPATH=plugins .venv/bin/python -m bench.archive_partitions
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, date, datetime

import psycopg
from maintenance.archive import tables
from maintenance.archive.partitions import archive_whole_partitions
from maintenance.archive.plan import months_before
from psycopg import sql

from bench.scratch import scratch_postgres


def build(conn, name: str, rows_per_month: int) -> None:
    conn.execute(sql.SQL("CREATE TABLE {} (id bigint, at timestamptz NOT NULL, payload text, PRIMARY KEY (id, at)) "
                         "PARTITION BY RANGE (at)").format(sql.Identifier(name)))
    month = date(2025, 1, 1)
    for n in range(12):
        following = months_before(month, -1)
        conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(f"{name}_{n:02d}"), sql.Identifier(name), sql.Literal(str(month)),
            sql.Literal(str(following))))
        seconds = (datetime.combine(following, datetime.min.time()) - datetime.combine(month, datetime.min.time()))
        conn.execute(sql.SQL("INSERT INTO {} SELECT g, %s::timestamptz + (g::float / %s) * %s::interval, "
                             "md5(g::text) FROM generate_series(0, %s - 1) g").format(sql.Identifier(name)),
                     (str(month), rows_per_month, seconds, rows_per_month))
        month = following
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))


def main() -> None:
    root, server = scratch_postgres("partitions")
    cutoff = datetime(2025, 7, 1, tzinfo=UTC)
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            print(f"{'rows per partition':>18} {'old partitions':>14} {'their size':>11} {'seconds':>8}")
            for rows in (1_000, 100_000, 1_000_000):
                name = f"events_{rows}"
                build(conn, name, rows)
                source = tables.describe(conn, f"public.{name}", field="bench")
                size = conn.execute("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i JOIN pg_class c "
                                    "ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass AND c.relname < %s",
                                    (name, f"{name}_06")).fetchone()[0]
                started = time.perf_counter()
                _, moved, _ = archive_whole_partitions(conn, source, f"public.{name}_archive", cutoff)
                seconds = time.perf_counter() - started
                print(f"{rows:>18,} {len(moved.attached):>14} {size / 2**20:>9.0f}MB {seconds:>8.3f}")
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)


if __name__ == "__main__":
    main()
