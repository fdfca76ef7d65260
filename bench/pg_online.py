"""Writers' latency while the project reindexes and de-bloats online, against no maintenance.

Starts its own PostgreSQL (with pg_repack when the machine has it), builds a bloated table,
then runs a single-row write workload (pgbench, custom script, 4 clients at 400
transactions/s) through phases of one run, in ``rounds`` rounds: a control, one backend that
only computes (no lock, no I/O), what any busy backend costs the writers on this machine; two
floors, a read and a copy of the table paced to run a fifth of the time, the least any online
rebuild must do; the project's ``reindex_concurrently`` of the table's indexes; the project's
``repack`` of the table; the same repacks with pg_repack's sessions on the server's defaults
(each operation three times in a row, for a window of several seconds). Every phase is
followed by a reference phase with no maintenance, and its ratio is its p99 over the mean of
the references just before and just after it. Each phase's p99 and worst transaction latency
come from pgbench's per-transaction log, over the operation's own time window. It prints each
phase, then each operation's median ratio over the rounds.

    PYTHONPATH=plugins .venv/bin/python -m bench.pg_online [rows [rounds]]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import psycopg
from maintenance.policy import load_policy
from maintenance.postgres import actions
from maintenance.postgres.safety import apply_session_limits
from psycopg import sql

from bench.scratch import scratch_postgres

SCRIPT = "\\set id random(1, {rows})\nUPDATE bench_t SET v = v + 1 WHERE id = :id;\n"


def build(conn, rows: int) -> None:
    conn.execute("DROP TABLE IF EXISTS bench_t")
    conn.execute("CREATE TABLE bench_t (id bigint PRIMARY KEY, v integer NOT NULL, payload text NOT NULL)")
    conn.execute("INSERT INTO bench_t SELECT g, g %% 1000, repeat(md5(g::text), 3) FROM generate_series(1, %s) g",
                 (rows,))
    conn.execute("CREATE INDEX bench_t_v_idx ON bench_t (v)")
    conn.execute("DELETE FROM bench_t WHERE id % 10 < 4 AND id > 1000")
    conn.execute("VACUUM ANALYZE bench_t")


def workload(server, root: Path, seconds: int, rows: int, tag: str) -> Path:
    script = root / "write.sql"
    script.write_text(SCRIPT.format(rows=rows // 10))  # the first rows survive the delete
    prefix = root / f"log-{tag}"
    subprocess.run([str(server.bindir / "pgbench"), "-n", "-c", "4", "-j", "2", "-T", str(seconds), "-R", "400",
                    "-f", str(script), "-l", "--log-prefix", str(prefix), "-h", "127.0.0.1", "-p",
                    str(server.port), "-U", "postgres", "postgres"], check=True, capture_output=True, cwd=root)
    return prefix


def latencies(prefix: Path, start: float, end: float) -> list[float]:
    found = []
    for log in prefix.parent.glob(prefix.name + "*"):
        for line in log.read_text().splitlines():
            parts = line.split()
            # client_id transaction_no time_us script_no epoch_s epoch_us [lag]
            finished = int(parts[4]) + int(parts[5]) / 1e6
            if start <= finished <= end:
                found.append(int(parts[2]) / 1000)
    return found


def settle(conn) -> None:
    """Write out what the build left dirty (the server's buffers, then the OS's page cache)
    before measuring: its writeback would otherwise slow the first phases' writers."""
    conn.execute("CHECKPOINT")
    os.sync()


def busy_backend(conn, seconds: int) -> None:
    """The control: one backend computing for ``seconds``, holding no lock and doing no I/O.
    What it costs the writers is what any one busy backend costs them on this machine."""
    conn.execute(f"DO $$ BEGIN WHILE clock_timestamp() < now() + interval '{int(seconds)} seconds' "
                 "LOOP END LOOP; END $$")


def paced_pass(conn, table: str, last_id: int, copy: bool, step: int = 25_000, duty: float = 0.2) -> None:
    """The least an online rebuild must do, paced as no pg_repack copy can be: read the rows of
    ``table`` (an ``id`` key, a ``payload`` column) up to ``id`` ``last_id`` (``copy``: and write
    them into a new table) in key ranges of ``step``, all in one snapshot, pausing after each
    range so that the work runs ``duty`` of the time. What this costs the writers is this
    machine's floor for any operation that reads or rewrites those rows."""
    source, scratch = sql.Identifier(table), sql.Identifier(f"{table}_floor_copy")
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(scratch))
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if copy:
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {})").format(scratch, source))
            statement = sql.SQL("INSERT INTO {} SELECT * FROM {} WHERE id > %s AND id <= %s").format(scratch, source)
        else:
            statement = sql.SQL("SELECT count(*), sum(length(payload::text)) FROM {} WHERE id > %s AND id <= %s"
                                ).format(source)
        for low in range(0, last_id, step):
            began = time.monotonic()
            conn.execute(statement, (low, min(low + step, last_id)))
            time.sleep((time.monotonic() - began) * (1 / duty - 1))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(scratch))


def phase(server, root, rows, tag, action=None, seconds=30) -> tuple[float, float, float]:
    window = {}
    runner = threading.Thread(target=lambda: window.update(prefix=workload(server, root, seconds, rows, tag)))
    runner.start()
    time.sleep(5)
    started = time.time()
    if action:
        action()
    else:
        time.sleep(seconds - 10)
    ended = time.time()
    runner.join()
    values = latencies(window["prefix"], started, ended)
    return ended - started, statistics.quantiles(values, n=100)[98], max(values)


def main(rows: int = 3_000_000, rounds: int = 3) -> None:
    root, server = scratch_postgres("online")
    safety = load_policy().postgres.safety
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_repack")
            print(f"building {rows:,} rows ...", flush=True)
            build(conn, rows)
            size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('bench_t'))").fetchone()[0]
            print(f"bench_t: {size} with indexes, 40% deleted")
            settle(conn)
            apply_session_limits(conn, safety)
            info = {"host": "127.0.0.1", "port": server.port, "user": "postgres", "password": None,
                    "dbname": "postgres"}

            def reindex_x3():
                for _ in range(3):
                    for index in ("bench_t_pkey", "bench_t_v_idx"):
                        actions.reindex_concurrently(conn, "public", index, safety)

            def repack_x3():
                for _ in range(3):
                    actions.repack(conn, "public", "bench_t", safety, info)

            def repack_x3_server_defaults():
                # pg_repack's sessions on the server's defaults (parallel index builds, the
                # server's memory): what the project's session settings change.
                with mock.patch.object(actions, "tool_options", lambda safety: ""):
                    repack_x3()

            # Each operation three times in a row: a window of several seconds, so its p99 rests
            # on a few thousand transactions rather than a few hundred. (name, action, writers' seconds)
            def floor(copy):
                return lambda: paced_pass(conn, "bench_t", rows, copy=copy)

            operations = [("control: one busy backend", lambda: busy_backend(conn, 15), 25),
                          ("floor: paced read, 20% of the time", floor(False), 30),
                          ("floor: paced copy, 20% of the time", floor(True), 40),
                          ("REINDEX CONCURRENTLY (2 indexes) x3", reindex_x3, 40),
                          ("pg_repack x3", repack_x3, 60),
                          ("pg_repack x3, server's session defaults", repack_x3_server_defaults, 60)]
            # The machine drifts within a run (its reference p99 has moved 2x between the start
            # and the end): every phase sits between two references of its own, and its ratio
            # is against their mean.
            reference = phase(server, root, rows, "ref-0", seconds=20)
            print(f"{'round':>5} {'phase':44} {'seconds':>8} {'p99 ms':>7} {'max ms':>7} {'refs p99':>11} {'ratio':>6}",
                  flush=True)
            ratios: dict[str, list[float]] = {name: [] for name, _, _ in operations}
            for number in range(1, rounds + 1):
                for index, (name, action, seconds) in enumerate(operations):
                    took, p99, worst = phase(server, root, rows, f"op-{number}-{index}", action, seconds=seconds)
                    after = phase(server, root, rows, f"ref-{number}-{index}", seconds=20)
                    ratio = p99 / statistics.mean([reference[1], after[1]])
                    ratios[name].append(ratio)
                    print(f"{number:5} {name:44} {took:8.1f} {p99:7.1f} {worst:7.1f} "
                          f"{reference[1]:5.1f}/{after[1]:<5.1f} {ratio:6.2f}", flush=True)
                    reference = after
        print(f"\n{'phase':44} {'median ratio':>12} {'range':>12}")
        for name, values in ratios.items():
            print(f"{name:44} {statistics.median(values):12.2f} {min(values):5.2f}-{max(values):<5.2f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3_000_000, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
