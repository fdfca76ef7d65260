"""Make a backup: pg_dump in custom format, and a manifest taken in the same snapshot.

One session exports a snapshot and holds it open; pg_dump (``--snapshot``) and the
sessions that count and checksum every table import it, so the manifest describes
exactly the rows the dump holds while the platform keeps writing. The dump is
uploaded first and the manifest last, so a manifest always means a complete dump.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from psycopg import sql

from maintenance import s3files
from maintenance.backups import content, store, tools
from maintenance.postgres.conninfo import connect, libpq_env

log = logging.getLogger(__name__)


def _snapshot_session(conninfo: dict, snapshot: str):
    conn = connect(conninfo)
    content.prepare(conn)
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
    return conn


def produce(conninfo: dict, s3, *, bucket: str, key: str, conn_id: str, compression: int, jobs: int,
            pg_bin_dir: str | None = None, workdir: Path | None = None, now=lambda: datetime.now(UTC)) -> dict:
    """Dump ``conninfo``'s database to ``s3://bucket/key`` with its manifest; return the manifest.

    ``now`` tells the time the manifest records (the maintenance clock, in operators)."""
    started = now()
    holder = connect(conninfo)
    try:
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = holder.execute("SELECT pg_export_snapshot()").fetchone()[0]
        relations = content.tables(holder)
        server_version = holder.execute("SHOW server_version").fetchone()[0]
        major = holder.info.server_version // 10000
        pg_dump = tools.binary("pg_dump", major, pg_bin_dir)
        with tempfile.TemporaryDirectory(dir=workdir, prefix="backup-") as tmp:
            path = Path(tmp) / "dump"
            clock = time.perf_counter()
            dump = subprocess.Popen(
                [pg_dump, "--format=custom", f"--compress={compression}", f"--snapshot={snapshot}",
                 "--file", str(path)], env=libpq_env(conninfo), stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True)
            try:
                fingerprints = content.fingerprint_all(lambda: _snapshot_session(conninfo, snapshot), relations,
                                                       jobs)
            finally:
                _, stderr = dump.communicate()
            if dump.returncode:
                raise tools.ToolError(f"pg_dump failed (exit {dump.returncode}): {stderr.strip()[-1500:]}")
            dump_seconds = time.perf_counter() - clock
            holder.execute("COMMIT")
            digest, size = s3files.sha256_of(path)
            manifest = {
                "format": 1, "conn_id": conn_id, "database": conninfo["dbname"], "server_version": server_version,
                "snapshot": snapshot, "started_at": started.isoformat(),
                "finished_at": now().isoformat(), "dump_seconds": round(dump_seconds, 3),
                "dump": {"key": key, "format": "custom", "compression": compression,
                         "bytes": size, "sha256": digest},
                "checksum_method": content.METHOD, "tables": content.to_manifest(fingerprints),
            }
            s3files.ensure_bucket(s3, bucket)
            s3files.upload(s3, path, bucket, key)
        s3.put_object(Bucket=bucket, Key=key + store.MANIFEST_SUFFIX, Body=json.dumps(manifest, indent=1).encode(),
                      ContentType="application/json")
    finally:
        holder.close()
    log.info("Backup of %s: %d tables, %d bytes in %.1fs -> s3://%s/%s", conninfo["dbname"],
             len(manifest["tables"]), manifest["dump"]["bytes"], dump_seconds, bucket, key)
    return manifest
