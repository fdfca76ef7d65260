"""Restore a backup into a scratch database and prove it: contents against the manifest,
btree indexes with amcheck, and for the disaster-recovery drill the policy's smoke queries.

The scratch database is dropped at the end whatever happened. Timings are what the
report needs: download plus restore is the recovery time actually achieved, the
backup's age at that moment the recovery point.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from psycopg import errors, sql

from maintenance.backups import content, store, tools
from maintenance.postgres.conninfo import connect, libpq_env

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "maint_restore_"

_BTREE_INDEXES = """
SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am am ON am.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE am.amname = 'btree' AND i.indisvalid AND c.relpersistence <> 't'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%%'
ORDER BY pg_relation_size(c.oid) DESC
"""


@dataclass
class RestoreResult:
    backup: str
    scratch: str
    backup_age_hours: float
    timings: dict[str, float] = field(default_factory=dict)
    tables_checked: int = 0
    indexes_checked: int = 0
    smoke: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)

    @property
    def restore_seconds(self) -> float:
        return self.timings.get("download", 0.0) + self.timings.get("restore", 0.0)

    def as_dict(self) -> dict:
        return {"backup": self.backup, "scratch": self.scratch, "backup_age_hours": round(self.backup_age_hours, 2),
                "timings": {k: round(v, 3) for k, v in self.timings.items()},
                "restore_seconds": round(self.restore_seconds, 3), "tables_checked": self.tables_checked,
                "indexes_checked": self.indexes_checked, "smoke": self.smoke, "problems": self.problems,
                "not_run": self.not_run}


def scratch_name(conn_id: str, day, token: str) -> str:
    return f"{SCRATCH_PREFIX}{re.sub(r'[^a-z0-9_]', '_', conn_id.lower())[:24]}_{day:%Y%m%d}_{token}"


# A restore test holds this advisory lock (with its scratch database's name) on the target server
# for as long as it uses the database: a killed run's lock is gone with its session.
_OWNER_LOCK = 7_345_002


def hold_scratch(admin, name: str) -> None:
    """Mark ``name`` as in use by this session (taken before the database is created)."""
    admin.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (_OWNER_LOCK, name))


def drop_leftovers(admin) -> list[str]:
    """Drop the scratch databases that runs which are over left behind (killed before their own
    drop): only ours, by name, and only those whose restore test no longer holds them. Another
    restore test running at the same moment, here or on another machine, keeps its database."""
    names = [r[0] for r in admin.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s", (SCRATCH_PREFIX.replace("_", "\\_") + "%",))]
    dropped = []
    for name in names:
        if not admin.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_OWNER_LOCK, name)).fetchone()[0]:
            log.info("Scratch database %s is in use by a running restore test: left alone", name)
            continue
        try:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            dropped.append(name)
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (_OWNER_LOCK, name))
    return dropped


@contextmanager
def _timed(timings: dict, name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = time.perf_counter() - start


def _amcheck(target: dict, jobs: int) -> tuple[int, list[str], str | None]:
    with connect(target) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        except errors.Error as exc:
            return 0, [], f"amcheck: not available on the restore server ({str(exc).strip()})"
        indexes = [r[0] for r in conn.execute(_BTREE_INDEXES)]
    queue, problems = list(indexes), []

    def worker():
        with connect(target) as conn:
            while queue:
                try:
                    index = queue.pop(0)
                except IndexError:
                    return
                try:
                    conn.execute("SELECT bt_index_check(%s::regclass)", (index,))
                except errors.Error as exc:
                    problems.append(f"index {index}: amcheck found {str(exc).strip()}")

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(worker) for _ in range(max(1, min(jobs, len(indexes))))]:
            future.result()
    return len(indexes), problems, None


def _smoke(target: dict, queries) -> tuple[list[dict], list[str]]:
    results, problems = [], []
    with connect(target) as conn:
        for query in queries:
            started = time.perf_counter()
            try:
                row = conn.execute(query.sql).fetchone()
                value = float(row[0]) if row and row[0] is not None else None
            except (errors.Error, TypeError, ValueError) as exc:
                problems.append(f"smoke query {query.name!r} failed: {str(exc).strip()}")
                continue
            ok = value is not None and value >= query.at_least
            results.append({"name": query.name, "value": value, "at_least": query.at_least, "ok": ok,
                            "seconds": round(time.perf_counter() - started, 3)})
            if not ok:
                problems.append(f"smoke query {query.name!r} returned {value}, expected at least {query.at_least:g}")
    return results, problems


def restore_test(s3, backup: store.StoredBackup, *, target: dict, scratch: str, jobs: int, now: datetime,
                 pg_bin_dir: str | None = None, smoke_queries=(), workdir: Path | None = None,
                 owner: str = "") -> RestoreResult:
    """Restore ``backup`` into database ``scratch`` on ``target``'s server, check it, drop it."""
    manifest = store.load_manifest(s3, backup)
    made = datetime.fromisoformat(manifest["finished_at"]) if manifest else backup.modified
    result = RestoreResult(backup.url, scratch, (now - made).total_seconds() / 3600)
    started = time.perf_counter()
    scratch_info = target | {"dbname": scratch}
    with connect(target) as admin:
        major = admin.info.server_version // 10000
        pg_restore = tools.binary("pg_restore", major, pg_bin_dir)
        left = drop_leftovers(admin)
        if left:
            log.warning("Dropped scratch databases left by an earlier run: %s", ", ".join(left))
        hold_scratch(admin, scratch)
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(scratch)))
        if owner:  # for people listing databases: which run made it
            admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(scratch), sql.Literal(f"restore test scratch database of {owner}")))
        try:
            with tempfile.TemporaryDirectory(dir=workdir, prefix="restore-") as tmp:
                with _timed(result.timings, "download"):
                    path = store.download(s3, backup, Path(tmp) / "dump")
                with _timed(result.timings, "restore"):
                    tools.run([pg_restore, "--no-owner", "--no-privileges", f"--jobs={jobs}",
                               f"--dbname={scratch}", str(path)], libpq_env(target, dbname=scratch),
                              what="pg_restore")
            with _timed(result.timings, "checksums"):
                restored = content.fingerprint_all(lambda: _prepared(scratch_info),
                                                   _tables(scratch_info), jobs)
            result.tables_checked = len(restored)
            if manifest:
                result.problems += content.compare(content.from_manifest(manifest["tables"]), restored)
            else:
                result.not_run.append("checksums: no manifest beside the dump (made elsewhere)")
            with _timed(result.timings, "amcheck"):
                result.indexes_checked, found, skipped = _amcheck(scratch_info, jobs)
            result.problems += found
            if skipped:
                result.not_run.append(skipped)
            if smoke_queries:
                with _timed(result.timings, "smoke"):
                    result.smoke, found = _smoke(scratch_info, smoke_queries)
                result.problems += found
        except tools.ToolError as exc:
            result.problems.append(str(exc))
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
    result.timings["total"] = time.perf_counter() - started
    return result


def _prepared(info: dict):
    conn = connect(info)
    content.prepare(conn)
    return conn


def _tables(info: dict):
    with connect(info) as conn:
        return content.tables(conn)
