"""Stops the servers a process started once that process is gone, however it ended.

The test suite and the demo start servers that outlive a killed parent: ``pg_ctl start``
daemonizes PostgreSQL, and a Redis child is re-parented to init when its parent is killed.
Each ``devtools.servers.start_*`` call notes what it started in the file named by
``$MAINTENANCE_SERVERS_FILE`` (one JSON line each). :func:`watch` starts this module as a
detached process that polls the owner's pid; when the owner is gone (a clean exit, Ctrl-C,
SIGKILL) it stops every server noted and, unless told to keep it, removes the owner's
working folder. A clean shutdown that already stopped them leaves it nothing to do.

    python -m devtools.reaper OWNER_PID SERVERS_FILE [FOLDER_TO_REMOVE]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ENV = "MAINTENANCE_SERVERS_FILE"


def note(kind: str, **details) -> None:
    """Record a started server for the reaper, when one watches this process."""
    path = os.environ.get(ENV)
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps({"kind": kind, **details}) + "\n")


def watch(servers_file: Path, remove: Path | None = None) -> None:
    """Start a detached reaper for this process."""
    os.environ[ENV] = str(servers_file)
    args = [sys.executable, "-m", "devtools.reaper", str(os.getpid()), str(servers_file)]
    if remove:
        args.append(str(remove))
    subprocess.Popen(args, cwd=Path(__file__).resolve().parents[1], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill(pid: int, grace: float = 10) -> None:
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def reap(servers_file: Path) -> None:
    if not servers_file.exists():
        return
    for line in servers_file.read_text().splitlines():
        entry = json.loads(line)
        if entry["kind"] == "postgres":
            pidfile = Path(entry["datadir"]) / "postmaster.pid"
            if pidfile.exists():  # the postmaster's pid is the file's first line
                _kill(int(pidfile.read_text().split()[0]))
        elif entry.get("pid"):
            _kill(int(entry["pid"]))


def main(argv: list[str]) -> int:
    owner, servers_file = int(argv[0]), Path(argv[1])
    remove = Path(argv[2]) if len(argv) > 2 else None
    while _alive(owner):
        time.sleep(1)
    reap(servers_file)
    if remove:
        shutil.rmtree(remove, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
