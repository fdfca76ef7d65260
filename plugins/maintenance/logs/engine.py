"""One folder's daily rotation: rotate, compress, archive to S3 verified, clean up, check.

Order matters for safety: a local file is deleted only after S3 gives back its exact
bytes, and the closing check proves that every file rotated in this run is either on
disk or verified in S3.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from maintenance.logs import rotate, ship
from maintenance.s3files import sha256_of

log = logging.getLogger(__name__)


@dataclass
class FolderReport:
    name: str
    path: str
    rotated: list[str] = field(default_factory=list)
    compressed: list[str] = field(default_factory=list)
    still_written: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    uploaded_bytes: int = 0
    deleted: list[str] = field(default_factory=list)
    deleted_bytes: int = 0
    kept: list[str] = field(default_factory=list)
    kept_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _age_order(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: (rotate.rotated_at(p), p.name))


def process_folder(folder, s3, *, bucket: str, prefix: str, host: str, now: datetime, settle_seconds: float,
                   dry_run: bool, sleep=None) -> FolderReport:
    """Rotate and archive one folder of the policy (``logs.folders[]``)."""
    path = Path(folder.path)
    report = FolderReport(folder.name, str(path))
    if not path.is_dir():
        report.problems.append(f"{path}: no such folder")
        return report
    _rotate_active(folder, path, rotate.stamp(now), report, dry_run)
    if dry_run:
        report.kept = [p.name for p in rotate.rotated_files(path)]
        return report
    _compress_settled(path, settle_seconds, report, sleep)
    key_of = lambda gz: ship.key_for(prefix, host, folder.name, gz)  # noqa: E731
    failed = _archive(s3, bucket, path, key_of, report)
    _clean_up(s3, bucket, folder, path, key_of, now, failed, report)
    _check(path, report)
    return report


def _rotate_active(folder, path: Path, when: str, report: FolderReport, dry_run: bool) -> None:
    for active in rotate.active_logs(path, folder.patterns):
        if active.stat().st_size < folder.min_bytes:
            continue
        if dry_run:
            report.rotated.append(active.name)
            continue
        try:
            report.rotated.append(rotate.rotate(active, when, method=folder.method, pidfile=folder.pidfile,
                                                reopen_signal=folder.reopen_signal).name)
        except (OSError, rotate.RotationError) as exc:
            report.problems.append(str(exc))


def _compress_settled(path: Path, settle_seconds: float, report: FolderReport, sleep) -> None:
    """Compress rotated files nobody writes any more; leave growing ones for the next run."""
    for raw in [p for p in rotate.rotated_files(path) if not p.name.endswith(".gz")]:
        if not rotate.settled(raw, settle_seconds, **({"sleep": sleep} if sleep else {})):
            report.still_written.append(raw.name)
            continue
        try:
            report.compressed.append(rotate.compress(raw).name)
        except rotate.RotationError as exc:
            report.problems.append(str(exc))


def _archive(s3, bucket: str, path: Path, key_of, report: FolderReport) -> set[str]:
    """Upload what S3 does not hold yet and verify it; return the files S3 does not hold intact."""
    failed = set()
    for gz in [p for p in rotate.rotated_files(path) if p.name.endswith(".gz")]:
        key = key_of(gz)
        if ship.already_uploaded(s3, bucket, key, sha256_of(gz)):
            continue
        shipped = ship.ship(s3, bucket, key, gz)
        if shipped.uploaded:
            report.uploaded.append(key)
            report.uploaded_bytes += shipped.bytes
        if not shipped.verified:
            failed.add(gz.name)
            report.problems.append(f"{gz.name}: {shipped.detail}; the local file is kept")
    return failed


def _clean_up(s3, bucket: str, folder, path: Path, key_of, now: datetime, failed: set[str],
              report: FolderReport) -> None:
    """Past retention (days, then total size), each file verified in S3 right before it goes."""
    compressed = _age_order([p for p in rotate.rotated_files(path) if p.name.endswith(".gz")])
    oldest_kept = now - timedelta(days=folder.retention_days)
    total = sum(p.stat().st_size for p in compressed)
    for gz in compressed:
        too_old = rotate.rotated_at(gz) <= oldest_kept
        too_big = total > folder.retention_mb * 2**20
        if not (too_old or too_big) or gz.name in failed:
            continue
        result = ship.verify(s3, bucket, key_of(gz), gz)
        if not result.verified:
            report.problems.append(f"{gz.name}: not deleted, {result.detail}")
            continue
        gz.unlink()
        total -= result.bytes
        report.deleted.append(gz.name)
        report.deleted_bytes += result.bytes


def _check(path: Path, report: FolderReport) -> None:
    """Every file rotated in this run is on disk, or was verified in S3 before it went."""
    on_disk = {p.name for p in rotate.rotated_files(path)}
    report.kept = sorted(on_disk)
    report.kept_bytes = sum((path / n).stat().st_size for n in on_disk)
    for name in report.rotated:
        if not ({name, name + ".gz"} & on_disk) and name + ".gz" not in report.deleted:
            report.problems.append(f"{name}: rotated in this run but neither on disk nor verified in S3")
