"""Throwaway Prometheus and Alertmanager servers (Debian's packages) for the demo and the tests.

Each lives under a folder of the caller's choosing, listens on 127.0.0.1 only, and is stopped by
its own ``stop()`` or, if its owner dies, by the reaper. History can be written into a
Prometheus's TSDB before it starts (:func:`write_history`, ``promtool tsdb
create-blocks-from openmetrics``), so a test knows exactly what the server has seen.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devtools import reaper
from devtools.servers import free_port, port_open

PROMETHEUS, PROMTOOL = "prometheus", "promtool"
ALERTMANAGER = "prometheus-alertmanager"  # Debian's name for alertmanager


def binary(name: str) -> str:
    found = shutil.which(name) or (shutil.which("alertmanager") if name == ALERTMANAGER else None)
    if not found:
        raise RuntimeError(f"{name} is not installed: run `bash devtools/system-deps.sh` (Debian packages "
                           "prometheus and prometheus-alertmanager)")
    return found


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    dir: Path
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _wait_ready(server: Server, path: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited: {log.read_text()[-1500:]}")
        if port_open(server.port):
            try:
                with urllib.request.urlopen(server.url + path, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} not ready on {server.url}: {log.read_text()[-1500:]}")
        time.sleep(0.1)


def _launch(name: str, cmd: list[str], root: Path, port: int, *, ready: str, env: dict | None = None) -> Server:
    """Start ``cmd`` in ``root`` (its output in ``root/<name>.log``), for the reaper to stop if its
    owner dies, and wait until ``ready`` answers 200."""
    log = root / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    reaper.note(name, pid=process.pid)
    server = Server(name, port, process, root)
    _wait_ready(server, ready, log)
    return server


def write_history(data_dir: Path, openmetrics: str) -> None:
    """Write samples (OpenMetrics text, ending with ``# EOF``) into the TSDB at ``data_dir``,
    as blocks Prometheus loads when it starts there."""
    data_dir.mkdir(parents=True, exist_ok=True)
    source = data_dir.parent / "history.om"
    source.write_text(openmetrics if openmetrics.rstrip().endswith("# EOF") else openmetrics.rstrip() + "\n# EOF\n")
    done = subprocess.run([binary(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics", str(source),
                           str(data_dir)], capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"promtool could not write the history: {done.stderr[-1500:]}")


def start_prometheus(root: Path, *, rule_files: list[Path] = (), scrape: dict[str, list[str]] | None = None,
                     alertmanager: str | None = None, evaluation_interval: str = "15s",
                     scrape_interval: str = "15s", scrape_self: bool = True, retention: str = "400d") -> Server:
    """Prometheus with ``rule_files``, scraping ``scrape`` (job -> host:port targets) and itself,
    sending its alerts to ``alertmanager`` (a URL), its TSDB in ``root/data`` (history written
    there first is kept). The admin API is on (snapshots, series deletion)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    scrape = ({"prometheus": [f"127.0.0.1:{port}"]} if scrape_self else {}) | (scrape or {})
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                           for job, targets in scrape.items()],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [
            {"targets": [alertmanager.removeprefix("http://").rstrip("/")]}]}]}
    (root / "prometheus.yml").write_text(json.dumps(config, indent=1))  # YAML is a superset of JSON
    return _launch("prometheus", [
        binary(PROMETHEUS), f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--web.enable-admin-api", "--web.enable-lifecycle",
        f"--storage.tsdb.retention.time={retention}", "--storage.tsdb.allow-overlapping-blocks"],
        root, port, ready="/-/ready")


def start_alertmanager(root: Path, *, webhook: str | None = None, webhook_token: str | None = None) -> Server:
    """Alertmanager, alone (no cluster), its notifications to ``webhook`` when given (with a bearer
    ``webhook_token``), resolved ones too."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    receiver = {"name": "maintenance"}
    if webhook:
        receiver["webhook_configs"] = [{"url": webhook, "send_resolved": True} | (
            {"http_config": {"authorization": {"type": "Bearer", "credentials": webhook_token}}}
            if webhook_token else {})]
    config = {"route": {"receiver": "maintenance", "group_wait": "1s", "group_interval": "5s",
                        "repeat_interval": "1h"},
              "receivers": [receiver]}
    (root / "alertmanager.yml").write_text(json.dumps(config, indent=1))
    return _launch("alertmanager", [
        binary(ALERTMANAGER), f"--config.file={root / 'alertmanager.yml'}", f"--storage.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="], root, port, ready="/-/ready")


def start_exporter(root: Path, kind: str, target: str) -> Server:
    """Debian's PostgreSQL or Redis exporter for ``target`` (a DSN or a redis:// URL) on a free port."""
    import os

    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ)
    if kind == "postgres":
        cmd = [binary("prometheus-postgres-exporter"), f"--web.listen-address=127.0.0.1:{port}"]
        env["DATA_SOURCE_NAME"] = target
    elif kind == "redis":
        cmd = [binary("prometheus-redis-exporter"), f"-redis.addr={target}", f"-web.listen-address=127.0.0.1:{port}"]
    else:
        raise ValueError(f"kind: postgres or redis, not {kind!r}")
    return _launch(f"{kind}-exporter", cmd, root, port, ready="/metrics", env=env)
