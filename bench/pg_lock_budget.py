"""Writers while a maintenance operation cannot get its lock: it gives up, they barely wait.

Starts its own PostgreSQL (with pg_repack), builds a table, and runs the single-row write
workload of ``bench.pg_online`` (pgbench, 4 clients, 400 tx/s) while another session holds a
lock that conflicts with the operation for the whole phase, as a long transaction or a running
VACUUM would:

- ``VACUUM FULL`` (needs ACCESS EXCLUSIVE) against a transaction that read the table (ACCESS SHARE);
- ``REINDEX INDEX CONCURRENTLY`` (SHARE UPDATE EXCLUSIVE) against a session holding SHARE UPDATE
  EXCLUSIVE, as a running VACUUM does;
- ``pg_repack`` (ACCESS EXCLUSIVE briefly, to install its trigger) against the reading transaction.

Each operation runs as the operators run it, under the policy's safety settings. It prints how
the operation ended and after how long, against its lock budget, and the writers' p99 and worst
latency over the operation's window. Goals: the operation gives up within its budget; no writer
waits more than 1 second.

    PYTHONPATH=plugins .venv/bin/python -m bench.pg_lock_budget [rows]
"""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg
from maintenance.policy import load_policy
from maintenance.postgres import actions
from maintenance.postgres.safety import apply_session_limits

from bench.pg_online import build, phase
from bench.scratch import scratch_postgres


def guarded_budget_s(safety) -> float:
    """The longest ``run_guarded`` may try: every attempt's lock timeout plus the backoffs between."""
    attempts = safety.lock_retries + 1
    backoffs = safety.lock_retry_backoff_s * (2 ** safety.lock_retries - 1)
    return attempts * safety.lock_timeout_ms / 1000 + backoffs


def main(rows: int = 300_000) -> None:
    root, server = scratch_postgres("locks")
    safety = load_policy().postgres.safety
    info = {"host": "127.0.0.1", "port": server.port, "user": "postgres", "password": None, "dbname": "postgres"}
    operations = {
        "VACUUM FULL": ("ACCESS SHARE (an open transaction that read the table)",
                        lambda conn: actions.vacuum_full(conn, "public", "bench_t", safety), guarded_budget_s(safety)),
        "REINDEX CONCURRENTLY": ("SHARE UPDATE EXCLUSIVE (as a running VACUUM)",
                                 lambda conn: actions.reindex_concurrently(conn, "public", "bench_t_v_idx", safety),
                                 guarded_budget_s(safety)),
        "pg_repack": ("ACCESS SHARE (an open transaction that read the table)",
                      lambda conn: actions.repack(conn, "public", "bench_t", safety, info), guarded_budget_s(safety)),
    }
    results = []
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_repack")
            build(conn, rows)
            apply_session_limits(conn, safety)
            for name, (held, run, budget) in operations.items():
                holder = psycopg.connect(server.dsn())
                if held.startswith("SHARE UPDATE"):
                    holder.execute("LOCK TABLE bench_t IN SHARE UPDATE EXCLUSIVE MODE")
                else:
                    holder.execute("SELECT count(*) FROM bench_t WHERE id < 10")
                outcome = {}

                def attempt(run=run, outcome=outcome):
                    started = time.perf_counter()
                    try:
                        run(conn)
                        outcome["how"] = "done (not blocked?)"
                    except Exception as exc:  # the point: it gives up
                        outcome["how"] = f"gave up: {type(exc).__name__}"
                    outcome["seconds"] = time.perf_counter() - started

                try:
                    _, p99, worst = phase(server, root, rows, name.split()[0].lower(), attempt,
                                          seconds=int(budget) + 20)
                finally:
                    holder.rollback()
                    holder.close()
                results.append((name, held, outcome, budget, p99, worst))
                print(f"{name}: {outcome['how']} after {outcome['seconds']:.1f}s (budget {budget:.0f}s); "
                      f"writers p99 {p99:.1f} ms, worst {worst:.1f} ms", flush=True)
        print(f"\n{'operation':22} {'lock held by another session':55} {'outcome':28} {'after s':>8} "
              f"{'budget s':>8} {'p99 ms':>7} {'worst ms':>9}")
        for name, held, outcome, budget, p99, worst in results:
            print(f"{name:22} {held:55} {outcome['how']:28} {outcome['seconds']:8.1f} {budget:8.0f} "
                  f"{p99:7.1f} {worst:9.1f}")
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300_000)
