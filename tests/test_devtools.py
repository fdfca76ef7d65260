"""The project's own tooling: what the suite and the demo start is gone when they end."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

OWNER = """
import json, sys, time
from pathlib import Path
from devtools import reaper, servers
folder = Path(sys.argv[1])
reaper.watch(folder / "servers.jsonl", remove=folder)
pg = servers.start_postgres(folder / "pg")
redis = servers.start_redis(folder / "redis")
pid = int((pg.datadir / "postmaster.pid").read_text().split()[0])
print(json.dumps({"postgres": pid, "redis": redis.process.pid}), flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours is gone for this purpose: it no longer runs.
    state = Path(f"/proc/{pid}/stat")
    return not state.exists() or state.read_text().split(")")[-1].split()[0] != "Z"


def test_servers_of_a_killed_owner_are_stopped_and_its_folder_removed():
    folder = Path(tempfile.mkdtemp(prefix="reaper-test-"))
    os.chmod(folder, 0o755)
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    started = json.loads(owner.stdout.readline())
    assert alive(started["postgres"]) and alive(started["redis"])
    owner.send_signal(signal.SIGKILL)  # no cleanup code of the owner runs
    owner.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (alive(started["postgres"]) or alive(started["redis"]) or folder.exists()):
        time.sleep(0.5)
    assert not alive(started["postgres"]), "PostgreSQL outlived its owner"
    assert not alive(started["redis"]), "Redis outlived its owner"
    assert not folder.exists()
