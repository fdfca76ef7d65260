"""Airflow's distributed topology as processes on one machine.

The same components the compose stack runs in containers, started here as processes: a
PostgreSQL metadata database, the scheduler, the DAG processor, the triggerer, the API server,
and (CeleryExecutor) Celery workers taking tasks from a Redis broker, each worker with a name
of its own so the task instances say which worker ran them. The installation is set up first by
`devtools.stack_init`, as the compose stack's init service does. `make celery` runs it against
the demo's target; the Celery test and the per-table benchmark use it too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from devtools import servers

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
WORKER_NAME = "MAINTENANCE_WORKER_NAME"


def worker_hostname() -> str:
    """[core] hostname_callable of the workers: two workers on one machine tell themselves apart."""
    import socket

    return os.environ.get(WORKER_NAME) or socket.getfqdn()


def sqlalchemy_url(dsn: str) -> str:
    """The metadata database's SQLAlchemy URL from a libpq URL."""
    return "postgresql+psycopg2://" + dsn.split("://", 1)[1]


@dataclass
class Topology:
    home: Path
    env: dict[str, str]
    api_port: int
    metadata_dsn: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    # -- components -------------------------------------------------------------------------
    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.home / f"{name}.log", "ab")
        proc = subprocess.Popen([AIRFLOW, *args], env=self.env | (env or {}), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=self.home)
        log.close()
        self.processes[name] = proc
        return proc

    def start_worker(self, name: str, concurrency: int = 2) -> subprocess.Popen:
        """A Celery worker named ``name``: its task instances record it as their hostname."""
        return self.start(name, "celery", "worker", "--concurrency", str(concurrency),
                          "--celery-hostname", f"{name}@%h", "--without-mingle", "--without-gossip",
                          env={WORKER_NAME: name,
                               "AIRFLOW__CORE__HOSTNAME_CALLABLE": "devtools.topology.worker_hostname",
                               "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(servers.free_port())})

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a component's whole process group (a worker with its task processes): SIGKILL
        is the machine lost, nothing cleaned up."""
        proc = self.processes[name]
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        self.processes.pop(name)  # gone on purpose: not a component that died

    def stop(self) -> None:
        stop_groups(list(reversed(self.processes.values())))

    def check_running(self) -> None:
        dead = {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}
        if dead:
            tails = {n: (self.home / f"{n}.log").read_bytes()[-1500:].decode(errors="replace") for n in dead}
            raise RuntimeError(f"Airflow components exited: {dead}\n" + "\n".join(f"--- {n}\n{t}"
                                                                                 for n, t in tails.items()))

    # -- the metadata database --------------------------------------------------------------
    def query(self, sql: str, params=None) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.metadata_dsn, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def wait_parsed(self, dag_ids: list[str], timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            try:
                found = {r[0] for r in self.query("SELECT dag_id FROM serialized_dag")}
            except Exception:  # not migrated yet
                found = set()
            if set(dag_ids) <= found and servers.port_open(self.api_port):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAGs not parsed within {timeout:.0f}s: {sorted(set(dag_ids) - found)}")
            time.sleep(1)

    def cli(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False, cwd=self.home)
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        return done.stdout

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """The run's final state, once it has one."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            rows = self.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))
            if rows and rows[0][0] in ("success", "failed"):
                return rows[0][0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} not finished within {timeout:.0f}s: {rows}")
            time.sleep(1)


def stop_groups(processes: list[subprocess.Popen], grace: float = 30) -> None:
    """SIGTERM to each process's group (Airflow's components stop at once on it; standalone waits
    about 30 s for its children on SIGINT), then SIGKILL to whatever is left after ``grace``."""
    for proc in processes:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for proc in processes:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


def environment(home: Path, *, dags_folder: Path, metadata_dsn: str, executor: str, broker_url: str | None,
                api_port: int, parallelism: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")} | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url(metadata_dsn),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "2",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "4",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # A worker that vanished is noticed within a minute, not the default five.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
    }
    if broker_url:
        env |= {"AIRFLOW__CELERY__BROKER_URL": broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_dsn,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2"}
    return env | (extra or {})


def start(home: Path, *, dags_folder: Path, dag_ids: list[str], metadata_dsn: str, executor: str = "CeleryExecutor",
          broker_url: str | None = None, workers: int = 2, parallelism: int = 8, api_port: int | None = None,
          unpause: bool = True, extra_env: dict[str, str] | None = None, say=lambda message: None) -> Topology:
    """Set the installation up (devtools.stack_init), start every component, wait until the
    DAGs are parsed and the API answers; the DAGs are unpaused when ``unpause``."""
    home.mkdir(parents=True, exist_ok=True)
    api_port = api_port or servers.free_port()
    env = environment(home, dags_folder=dags_folder, metadata_dsn=metadata_dsn, executor=executor,
                      broker_url=broker_url, api_port=api_port, parallelism=parallelism, extra=extra_env)
    topology = Topology(home=home, env=env, api_port=api_port, metadata_dsn=metadata_dsn)
    done = subprocess.run([sys.executable, "-m", "devtools.stack_init"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"devtools.stack_init failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    for line in done.stdout.strip().splitlines():
        say(line)
    try:
        for component in ("scheduler", "dag-processor", "triggerer", "api-server"):
            topology.start(component, component)
        if executor == "CeleryExecutor":
            for n in range(1, workers + 1):
                topology.start_worker(f"worker{n}")
        topology.wait_parsed(dag_ids)
        for dag_id in dag_ids if unpause else ():
            topology.cli("dags", "unpause", dag_id)
    except BaseException:
        topology.stop()
        raise
    return topology
