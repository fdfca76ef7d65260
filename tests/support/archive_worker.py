"""A separate process that archives, for the fault test to kill: prints its backend pid, then moves.

    python -m tests.support.archive_worker <dsn> <source> <archive> <time column> <cutoff iso> [try]

With a try number, it works as the archive task does: a ledger in the same database, the move
recorded as a running action before the first batch and counted inside each batch.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime

import psycopg
from maintenance.policy.model import ArchiveBatching


def order_children(conn):
    """The orders table of tests/test_archive_safety.py, its archive, and its two children's moves."""
    from maintenance.archive import tables
    from maintenance.archive.mover import ChildMove

    source = tables.describe(conn, "public.orders_c", field="s")
    archive = tables.ensure_archive(conn, source, "public.orders_c_archive", field="a")
    refs = {r.table: r for r in tables.references_to(conn, source)}
    children = []
    for name in ("public.order_lines", "public.order_tags"):
        child = tables.describe(conn, name, field="c")
        children.append(ChildMove.of(conn, refs[name], child,
                                     tables.ensure_archive(conn, child, f"{name}_archive", field="c")))
    return source, archive, tuple(children)


def main(dsn: str, source: str, archive: str, time_column: str, cutoff: str, try_number: str = "") -> None:
    from maintenance.archive import tables
    from maintenance.archive.mover import move_rows

    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("SET lock_timeout = '1s'")
    print(conn.info.backend_pid, flush=True)
    src = tables.describe(conn, source, field="source")
    arc = tables.ensure_archive(conn, src, archive, field="archive")
    # Small batches and a breath between them, so a kill lands in the middle of the move.
    batching = ArchiveBatching(initial_rows=200, min_rows=50, max_rows=200, target_ms=5)
    move = {"batching": batching, "max_rows": 10**9, "progress": lambda *_: time.sleep(0.01)}
    if not try_number:
        result = move_rows(conn, src, arc, time_column, datetime.fromisoformat(cutoff), **move)
        print(f"done {result.rows}", flush=True)
        return
    from maintenance.archive.operators import ledger_tally
    from maintenance.ledger.schema import ensure_schema
    from maintenance.ledger.store import Ledger, TaskKey

    ledger_conn = psycopg.connect(dsn, autocommit=True)
    ensure_schema(ledger_conn, "maintenance")
    ledger = Ledger(ledger_conn, "maintenance", TaskKey("maintenance_monthly", "archive", "fault-run",
                                                        try_number=int(try_number)))
    closed = ledger.start_task()
    print(json.dumps(closed), flush=True)
    with ledger.action("archive", f"platform_db:{source}", "move_rows") as act:
        act.rows_affected = 0
        result = move_rows(conn, src, arc, time_column, datetime.fromisoformat(cutoff),
                           tally=ledger_tally(ledger, ledger.checkpoint(act)), **move)
        act.rows_affected = result.rows
    ledger.finish_task("done", {"rows": result.rows})
    print(f"done {result.rows}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:7])
