"""Writers' latency while the project reindexes and de-bloats online, against no maintenance.

Starts its own PostgreSQL (with pg_repack when the machine has it), builds a bloated
table, then runs a single-row write workload (pgbench, custom script, 4 clients) in three
phases of the same run: no maintenance; a control, one backend that only computes (no lock,
no I/O), what any busy backend costs the writers on this machine; the project's
``reindex_concurrently`` of the table's indexes; the project's ``repack`` of the table (each
operation three times in a row, for a window of several seconds). Each
phase's p99 and worst transaction latency come from pgbench's per-transaction log, over the
operation's own time window (plus the baseline's whole window).

    PYTHONPATH=plugins .venv/bin/python -m bench.pg_online [rows]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from maintenance.policy import load_policy
from maintenance.postgres import actions
from maintenance.postgres.safety import apply_session_limits

from devtools import servers

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


def busy_backend(conn, seconds: int) -> None:
    """The control: one backend computing for ``seconds``, holding no lock and doing no I/O.
    What it costs the writers is what any one busy backend costs them on this machine."""
    conn.execute(f"DO $$ BEGIN WHILE clock_timestamp() < now() + interval '{int(seconds)} seconds' "
                 "LOOP END LOOP; END $$")


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


def main(rows: int = 3_000_000) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-online-"))
    root.chmod(0o755)
    server = servers.start_postgres(root / "pg")
    safety = load_policy().postgres.safety
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_repack")
            print(f"building {rows:,} rows ...", flush=True)
            build(conn, rows)
            size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('bench_t'))").fetchone()[0]
            print(f"bench_t: {size} with indexes, 40% deleted")
            apply_session_limits(conn, safety)
            info = {"host": "127.0.0.1", "port": server.port, "user": "postgres", "password": None,
                    "dbname": "postgres"}
            results = {
                "no maintenance": phase(server, root, rows, "base"),
                "control: one busy backend": phase(server, root, rows, "control", lambda: busy_backend(conn, 20)),
                # Each operation three times in a row: a window of several seconds, so its p99
                # rests on a few thousand transactions rather than a few hundred.
                "REINDEX CONCURRENTLY (2 indexes) x3": phase(server, root, rows, "reindex", lambda: [
                    actions.reindex_concurrently(conn, "public", index, safety)
                    for _ in range(3) for index in ("bench_t_pkey", "bench_t_v_idx")], seconds=40),
                "pg_repack x3": phase(server, root, rows, "repack", lambda: [
                    actions.repack(conn, "public", "bench_t", safety, info) for _ in range(3)], seconds=60),
            }
        base_p99 = results["no maintenance"][1]
        print(f"{'phase':38} {'seconds':>8} {'p99 ms':>8} {'max ms':>8} {'p99 ratio':>10}")
        for name, (seconds, p99, worst) in results.items():
            print(f"{name:38} {seconds:8.1f} {p99:8.1f} {worst:8.1f} {p99 / base_p99:10.2f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3_000_000)
