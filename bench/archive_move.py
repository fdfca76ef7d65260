"""The online batched archive move against one big transaction, with writers running.

Starts its own PostgreSQL, builds two identical session tables of ``rows`` rows (half older
than the cutoff; three indexes), then in the same run, each phase with a single-row write
workload (pgbench, custom script: update a recent session, insert a new one; 4 clients at
400 transactions/s) on the table it works on:

1. a control: one backend that only computes (no lock, no I/O), what any busy backend
   costs the writers on this machine;
2. a floor: a copy of table A's old rows into a scratch table, paced to work a fifth of the
   time (``bench.pg_online.paced_pass``), the least a move must write;
3. project: ``move_rows`` (policy batching) from table A into its archive;
4. baseline: ``INSERT INTO archive SELECT ... ; DELETE ...`` in one transaction on table B.

Before and after each phase the writers run alone for 20 s: the reference. It prints rows per
second of both moves and their ratio (goal >= 0.6), the writers' p99 and worst latency in each
phase against the mean of the references just before and just after it (goal <= 2x), and the
longest batch (goal <= 500 ms).

    PYTHONPATH=plugins .venv/bin/python -m bench.archive_move [rows [pause_ms]]

``pause_ms`` overrides the policy's ``batching.pause_ms`` (a pause after each batch).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from maintenance.archive import tables
from maintenance.archive.mover import choose_check, move_rows
from maintenance.policy import load_policy
from maintenance.postgres.safety import apply_session_limits

from bench.pg_online import busy_backend, latencies, paced_pass, settle
from bench.scratch import scratch_postgres

CUTOFF = datetime(2026, 6, 1, tzinfo=UTC)

BUILD = """
CREATE TABLE {t} (
    id bigserial PRIMARY KEY, student_id bigint NOT NULL, career_id integer NOT NULL,
    created_at timestamptz NOT NULL, ended_at timestamptz, duration_s integer, payload jsonb);
INSERT INTO {t} (student_id, career_id, created_at, ended_at, duration_s, payload)
SELECT g % 200000, g % 40, timestamptz '2025-12-01' + (g::float / {rows}) * interval '360 days',
       timestamptz '2025-12-01' + (g::float / {rows}) * interval '360 days' + interval '20 minutes', g % 3600,
       jsonb_build_object('lesson', g % 500, 'device', 'web')
FROM generate_series(1, {rows}) g;
CREATE INDEX {t}_created_at_idx ON {t} (created_at);
CREATE INDEX {t}_student_idx ON {t} (student_id);
VACUUM ANALYZE {t};
"""

SCRIPT = """\\set id random({low}, {high})
BEGIN;
UPDATE {t} SET duration_s = duration_s + 1 WHERE id = :id;
INSERT INTO {t} (student_id, career_id, created_at, duration_s) VALUES (:id % 200000, 1, now(), 0);
END;
"""


def writers(server, root: Path, table: str, rows: int, seconds: float, tag: str) -> Path:
    script = root / f"{tag}.sql"
    script.write_text(SCRIPT.format(t=table, low=rows // 2 + 1000, high=rows))  # recent sessions only
    prefix = root / f"log-{tag}"
    subprocess.run([str(server.bindir / "pgbench"), "-n", "-c", "4", "-j", "2", "-T", str(int(seconds)),
                    "-R", "400", "-f", str(script), "-l", "--log-prefix", str(prefix), "-h", "127.0.0.1",
                    "-p", str(server.port), "-U", "postgres", "postgres"], check=True, capture_output=True, cwd=root)
    return prefix


def with_writers(server, root, table, rows, tag, action, seconds):
    """Run ``action`` while the writers run; latencies over the action's own window."""
    box = {}
    runner = threading.Thread(target=lambda: box.update(prefix=writers(server, root, table, rows, seconds, tag)))
    runner.start()
    time.sleep(3)
    started = time.time()
    outcome = action()
    ended = time.time()
    runner.join()
    values = latencies(box["prefix"], started, ended)
    return outcome, ended - started, statistics.quantiles(values, n=100)[98], max(values)


def main(rows: int = 5_000_000, pause_ms: float | None = None) -> None:
    root, server = scratch_postgres("archive")
    policy = load_policy()
    batching = policy.archive.batching
    if pause_ms is not None:
        batching = batching.model_copy(update={"pause_ms": pause_ms})
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            started = time.perf_counter()
            for table in ("sessions_a", "sessions_b"):
                for statement in BUILD.format(t=table, rows=rows).split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
            old = conn.execute("SELECT count(*) FROM sessions_a WHERE created_at < %s", (CUTOFF,)).fetchone()[0]
            size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('sessions_a'))").fetchone()[0]
            print(f"two tables of {rows:,} rows ({size} each with indexes), {old:,} older than the cutoff; "
                  f"built in {time.perf_counter() - started:.0f}s", flush=True)
            settle(conn)

            def reference(tag):
                return with_writers(server, root, "sessions_a", rows, tag, lambda: time.sleep(20), 26)[2]

            # The machine drifts within a run: every phase sits between two references of its
            # own (writers alone, 20 s), and its ratio is against their mean.
            refs = [reference("reference-0")]
            _, _, busy_p99, busy_max = with_writers(server, root, "sessions_a", rows, "control",
                                                    lambda: busy_backend(conn, 20), 26)
            refs.append(reference("reference-1"))
            last_old = conn.execute("SELECT max(id) FROM sessions_a WHERE created_at < %s", (CUTOFF,)).fetchone()[0]
            _, floor_s, floor_p99, floor_max = with_writers(
                server, root, "sessions_a", rows, "floor", lambda: paced_pass(conn, "sessions_a", last_old, copy=True),
                old / 50_000 + 15)
            refs.append(reference("reference-floor"))

            apply_session_limits(conn, policy.postgres.safety)  # as the operator runs it
            src = tables.describe(conn, "public.sessions_a", field="source")
            arc = tables.ensure_archive(conn, src, "public.sessions_a_archive", field="archive")
            print(f"each batch checks count and checksum of {', '.join(choose_check(conn, src, arc).columns)}",
                  flush=True)
            seconds_guess = old / 40_000 + 10
            result, project_s, project_p99, project_max = with_writers(
                server, root, "sessions_a", rows, "project",
                lambda: move_rows(conn, src, arc, "created_at", CUTOFF, batching=batching, max_rows=10**9),
                seconds_guess)
            conn.execute("RESET ALL")  # the references and the baseline run with the server's defaults
            refs.append(reference("reference-2"))

            def one_transaction():
                with conn.transaction():
                    conn.execute("CREATE TABLE sessions_b_archive (LIKE sessions_b INCLUDING CONSTRAINTS)")
                    conn.execute("ALTER TABLE sessions_b_archive ADD PRIMARY KEY (id)")
                    moved = conn.execute("INSERT INTO sessions_b_archive SELECT * FROM sessions_b "
                                         "WHERE created_at < %s", (CUTOFF,)).rowcount
                    conn.execute("DELETE FROM sessions_b WHERE created_at < %s", (CUTOFF,))
                return moved

            moved_b, baseline_s, base_p99, base_max = with_writers(server, root, "sessions_b", rows, "baseline",
                                                                   one_transaction, old / 100_000 + 15)
            refs.append(reference("reference-3"))
        project_rate, baseline_rate = result.rows / project_s, moved_b / baseline_s
        print(f"writers alone, p99 ms: {' / '.join(f'{value:.1f}' for value in refs)} "
              "(before and after each phase below)")
        print(f"{'phase':36} {'rows':>10} {'seconds':>8} {'rows/s':>9} {'p99 ms':>7} {'max ms':>7} {'p99 x':>6}")
        for index, (name, moved, seconds, p99, worst) in enumerate([
                ("control: one busy backend", None, 20.0, busy_p99, busy_max),
                ("floor: paced copy, 20% of the time", old, floor_s, floor_p99, floor_max),
                ("project: batched move", result.rows, project_s, project_p99, project_max),
                ("baseline: one transaction", moved_b, baseline_s, base_p99, base_max)]):
            ratio = p99 / statistics.mean(refs[index:index + 2])
            counts = (f"{moved:10,} {seconds:8.1f} {moved / seconds:9,.0f}" if moved is not None
                      else f"{'-':>10} {seconds:8.1f} {'-':>9}")
            print(f"{name:36} {counts} {p99:7.1f} {worst:7.1f} {ratio:6.2f}")
        print(f"throughput ratio project/baseline: {project_rate / baseline_rate:.2f} (goal >= 0.6); "
              f"{result.batches} batches, longest {result.longest_batch_ms:.0f} ms (goal <= 500), "
              f"lock timeouts {result.lock_timeouts}, batches cancelled at the limit {result.batch_timeouts}, "
              f"pause after each batch {batching.pause_ms:.0f} ms")
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5_000_000, float(sys.argv[2]) if len(sys.argv) > 2 else None)
