"""Writers' latency while the project vacuums a table, against the same VACUUM unpaced.

Starts its own PostgreSQL and builds ``bench.pg_online``'s table (autovacuum off on it). Each
round first updates a tenth of its rows, spread over every page, so a VACUUM has every page to
clean and every index to sweep; then, with ``bench.pg_online``'s writers running (4 clients at
400 transactions/s, single-row updates), it runs the project's ``vacuum_analyze`` under the
policy's session settings (VACUUM paced as autovacuum is), or the same statement on the
server's defaults (a manual VACUUM is unpaced). Every phase is followed by 20 s of writers
alone; a phase's ratio is its p99 over the mean of the references just before and after it.
It prints each phase, then each variant's median ratio and duration over the rounds.

    PYTHONPATH=plugins .venv/bin/python -m bench.pg_vacuum [rows [rounds]]
"""

from __future__ import annotations

import statistics
import sys

import psycopg
from maintenance.policy import load_policy
from maintenance.postgres import actions
from maintenance.postgres.safety import apply_session_limits

from bench.pg_online import build, phase, settle
from bench.scratch import scratch_postgres


def main(rows: int = 3_000_000, rounds: int = 3) -> None:
    root, server = scratch_postgres("vacuum")
    safety = load_policy().postgres.safety
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            print(f"building {rows:,} rows ...", flush=True)
            build(conn, rows)
            conn.execute("ALTER TABLE bench_t SET (autovacuum_enabled = false)")
            settle(conn)

            def project():
                apply_session_limits(conn, safety)
                actions.vacuum_analyze(conn, "public", "bench_t", safety)

            def unpaced():
                conn.execute("RESET ALL")
                conn.execute("VACUUM (ANALYZE) bench_t")

            variants = [("project (policy's pacing)", project), ("server's defaults (unpaced)", unpaced)]
            reference = phase(server, root, rows, "ref-0", seconds=20)
            print(f"{'round':>5} {'phase':30} {'seconds':>8} {'p99 ms':>7} {'max ms':>7} {'refs p99':>11} {'ratio':>6}",
                  flush=True)
            measured: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in variants}
            for number in range(1, rounds + 1):
                for index, (name, action) in enumerate(variants):
                    conn.execute("RESET ALL")
                    conn.execute("UPDATE bench_t SET v = v + 1 WHERE id % 10 = 5")  # dead rows on every page
                    settle(conn)
                    took, p99, worst = phase(server, root, rows, f"op-{number}-{index}", action, seconds=90)
                    after = phase(server, root, rows, f"ref-{number}-{index}", seconds=20)
                    ratio = p99 / statistics.mean([reference[1], after[1]])
                    measured[name].append((ratio, took))
                    print(f"{number:5} {name:30} {took:8.1f} {p99:7.1f} {worst:7.1f} "
                          f"{reference[1]:5.1f}/{after[1]:<5.1f} {ratio:6.2f}", flush=True)
                    reference = after
        print(f"\n{'phase':30} {'median ratio':>12} {'range':>12} {'median seconds':>15}")
        for name, values in measured.items():
            ratios = [r for r, _ in values]
            print(f"{name:30} {statistics.median(ratios):12.2f} {min(ratios):5.2f}-{max(ratios):<5.2f} "
                  f"{statistics.median(t for _, t in values):15.1f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3_000_000, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
