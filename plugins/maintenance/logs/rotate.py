"""Rotating and compressing log files on local disk, losing nothing.

Rotated files are named ``<log>.<YYYYMMDDTHHMMSSZ>`` (then ``.gz``), so an active-log
pattern such as ``*.log`` never matches them and their name says when they were rotated.
Compression writes ``.gz.part``, reads it back to check it holds exactly the original
bytes, and only then replaces the original: a full disk or a crash leaves the original.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

ROTATED = re.compile(r"\.(\d{8}T\d{6}Z)(?:-\d+)?(\.gz)?$")
_CHUNK = 1 << 20


class RotationError(RuntimeError):
    pass


REOPEN_WAIT_S = 10  # at most, for a signalled writer to make its log anew


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def rotated_at(path: Path) -> datetime | None:
    match = ROTATED.search(path.name)
    return datetime.strptime(match[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) if match else None


def active_logs(folder: Path, patterns: list[str]) -> list[Path]:
    found = {p for pattern in patterns for p in folder.glob(pattern) if p.is_file() and not ROTATED.search(p.name)}
    return sorted(found)


def rotated_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and ROTATED.search(p.name)
                  and not p.name.endswith(".part"))


def _target(path: Path, when: str) -> Path:
    target, n = path.with_name(f"{path.name}.{when}"), 0
    while target.exists() or target.with_name(target.name + ".gz").exists():
        n += 1
        target = path.with_name(f"{path.name}.{when}-{n}")
    return target


def rotate(path: Path, when: str, *, method: str, pidfile: str | None = None, reopen_signal: str = "HUP") -> Path:
    """Rotate one active log; return the rotated file.

    copytruncate: copy, then truncate the original in place, for writers that keep the file
    open and cannot be told to reopen it (lines written between the copy and the truncation
    are the method's known risk). rename: rename, then signal the writer to reopen its log.
    """
    target = _target(path, when)
    if method == "rename":
        pid = _pid(pidfile)
        os.rename(path, target)
        try:
            os.kill(pid, getattr(signal, f"SIG{reopen_signal}"))
        except ProcessLookupError as exc:
            raise RotationError(f"{path}: rotated to {target.name}, but the writer (pid {pid}) is gone; "
                                "nothing was lost, the log is not reopened") from exc
        # Give the writer time to reopen (it makes the log anew) before anyone judges whether the
        # rotated file is still written: a busy machine may run its handler late.
        deadline = time.monotonic() + REOPEN_WAIT_S
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return target
    with open(path, "rb") as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)
        # Whatever the writer added while we copied: take it too, just before truncating.
        shutil.copyfileobj(src, dst, _CHUNK)
        dst.flush()
        os.fsync(dst.fileno())
        os.truncate(path, 0)
    return target


def _pid(pidfile: str | None) -> int:
    try:
        return int(Path(pidfile).read_text().strip())
    except (OSError, ValueError, TypeError) as exc:
        raise RotationError(f"pidfile {pidfile!r}: cannot read the writer's pid ({exc}); nothing rotated") from exc


def settled(path: Path, settle_seconds: float, *, sleep=time.sleep) -> bool:
    """True when nobody is still writing the file (its size holds over ``settle_seconds``)."""
    before = path.stat()
    if time.time() - before.st_mtime >= settle_seconds:
        return True
    sleep(settle_seconds)
    after = path.stat()
    return (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def compress(path: Path) -> Path:
    """gzip ``path`` to ``path.gz``, checked by reading it back; the original goes only then."""
    final = path.with_name(path.name + ".gz")
    part = path.with_name(path.name + ".gz.part")
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as src, open(part, "wb") as raw:
            with gzip.GzipFile(filename=path.name, mode="wb", fileobj=raw, mtime=int(path.stat().st_mtime)) as gz:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    gz.write(chunk)
            raw.flush()
            os.fsync(raw.fileno())
        check = hashlib.sha256()
        with gzip.open(part, "rb") as back:
            while chunk := back.read(_CHUNK):
                check.update(chunk)
        if check.digest() != digest.digest():
            raise RotationError(f"{part}: reads back differently from {path.name}")
    except (OSError, EOFError, RotationError) as exc:
        part.unlink(missing_ok=True)
        raise RotationError(f"{path}: not compressed, the original is kept ({exc})") from exc
    os.rename(part, final)
    os.unlink(path)
    return final
