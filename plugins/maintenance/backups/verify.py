"""Daily backup verification: is the newest backup there, recent, whole and readable?

Checks: exists, age, size_trend (against the previous backup), sha256 (against the
manifest), table_of_contents (``pg_restore --list``, and every table of the manifest in
it), data_readable (``pg_restore`` reads every block to /dev/null).

Each check says what it found with figures. A check that cannot run (no manifest for
a backup made elsewhere, no previous backup to compare sizes with) says why instead
of passing.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from maintenance import s3files
from maintenance.backups import store, tools


@dataclass
class Check:
    name: str
    ok: bool | None  # None: could not run
    detail: str


@dataclass
class Verification:
    backup: str | None
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    @property
    def not_run(self) -> list[Check]:
        return [c for c in self.checks if c.ok is None]

    def as_dict(self) -> dict:
        return {"backup": self.backup, "checks": [asdict(c) for c in self.checks]}

    def message(self) -> str:
        return "; ".join(f"{c.name}: {c.detail}" for c in self.failed)


def verify(s3, *, bucket: str, prefix: str, conn_id: str, now: datetime, max_age_hours: float,
           max_size_drop_fraction: float, pg_restore: str, env: dict, workdir: Path | None = None) -> Verification:
    backups = store.list_backups(s3, bucket, prefix, conn_id)
    if not backups:
        where = f"s3://{bucket}/{store.folder(prefix, conn_id)}"
        return Verification(None, [Check("exists", False, f"no backup under {where}")])
    newest = backups[-1]
    manifest = store.load_manifest(s3, newest)
    checks = [Check("exists", True, f"{newest.url}, {newest.size:,} bytes")]

    made = datetime.fromisoformat(manifest["finished_at"]) if manifest else newest.modified
    age_h = (now - made).total_seconds() / 3600
    checks.append(Check("age", age_h <= max_age_hours,
                        f"{age_h:.1f} h old (limit {max_age_hours:g} h), made {made.isoformat(timespec='minutes')}"))

    if len(backups) > 1:
        previous = backups[-2]
        floor = previous.size * (1 - max_size_drop_fraction)
        drop = 1 - newest.size / previous.size if previous.size else 0.0
        checks.append(Check("size_trend", newest.size >= floor,
                            f"{newest.size:,} bytes vs {previous.size:,} before ({-drop:+.1%}; "
                            f"a fall of more than {max_size_drop_fraction:.0%} fails)"))
    else:
        checks.append(Check("size_trend", None, "no previous backup to compare with"))

    with tempfile.TemporaryDirectory(dir=workdir, prefix="verify-") as tmp:
        path = store.download(s3, newest, Path(tmp) / "dump")
        if manifest:
            want = manifest["dump"]
            digest = s3files.sha256_of(path)[0]
            same = digest == want["sha256"] and newest.size == want["bytes"]
            checks.append(Check("sha256", same, "matches the manifest" if same else
                                f"{newest.size:,} bytes with SHA-256 {digest[:16]}..., the manifest says "
                                f"{want['bytes']:,} bytes with {want['sha256'][:16]}..."))
        else:
            checks.append(Check("sha256", None, "no manifest beside the dump (made elsewhere): nothing to compare"))
        try:
            entries = tools.table_data_entries(pg_restore, path, env)
        except tools.ToolError as exc:
            checks.append(Check("table_of_contents", False, str(exc)))
        else:
            missing = [f"{t['schema']}.{t['table']}" for t in (manifest or {}).get("tables", [])
                       if not tools.holds_table(entries, t["schema"], t["table"])]
            checks.append(Check("table_of_contents", not missing,
                                f"readable, {len(entries)} tables with data" if not missing else
                                f"tables of the manifest missing from the dump: {', '.join(missing)}"))
        # The table of contents sits at the head of the file: only reading every data block
        # through decompression finds a dump cut short.
        try:
            tools.run([pg_restore, "--file=/dev/null", str(path)], env, what="pg_restore (reading every block)")
            checks.append(Check("data_readable", True, "every data block reads and decompresses"))
        except tools.ToolError as exc:
            checks.append(Check("data_readable", False, str(exc)))
    return Verification(newest.url, checks)
