"""A separate process that archives, for the fault test to kill: prints its backend pid, then moves.

    python -m tests.support.archive_worker <dsn> <source> <archive> <time column> <cutoff iso>
"""

from __future__ import annotations

import sys
import time
from datetime import datetime

import psycopg
from maintenance.policy.model import ArchiveBatching


def main(dsn: str, source: str, archive: str, time_column: str, cutoff: str) -> None:
    from maintenance.archive import tables
    from maintenance.archive.mover import move_rows

    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("SET lock_timeout = '1s'")
    print(conn.info.backend_pid, flush=True)
    src = tables.describe(conn, source, field="source")
    arc = tables.ensure_archive(conn, src, archive, field="archive")
    # Small batches and a breath between them, so a kill lands in the middle of the move.
    batching = ArchiveBatching(initial_rows=200, min_rows=50, max_rows=200, target_ms=5)
    result = move_rows(conn, src, arc, time_column, datetime.fromisoformat(cutoff), batching=batching,
                       max_rows=10**9, progress=lambda *_: time.sleep(0.01))
    print(f"done {result.rows}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:6])
