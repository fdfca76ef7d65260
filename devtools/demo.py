"""`make demo`: Airflow with the maintenance DAGs, against a target.

When no target is configured (no ``AIRFLOW_CONN_PLATFORM_DB`` in the environment
or in ``.env``), it starts an embedded one under ``.demo/``: a PostgreSQL
server with pg_stat_statements preloaded (pgstattuple and amcheck available)
and a Redis-compatible server, seeded with data shaped like the platform's.
Then it runs ``airflow standalone`` in its own process group, waits for the
UI, prints the address and login, and stops everything on Ctrl-C or
``make demo-stop``.

One demo runs at a time: a second ``up`` is refused, naming the running one's address.
What the demo holds survives a restart: PostgreSQL's data, Redis's keys (append-only file)
and the embedded S3's objects (saved to ``.demo/s3/`` while it runs and when it stops).
Servers log to files under ``.demo/``; the terminal shows only what a person needs. A
detached reaper stops the servers if the demo itself is killed.

    python -m devtools.demo up                   # foreground; Ctrl-C stops
    python -m devtools.demo down                 # stop what an earlier `up` started
    python -m devtools.demo dags-test DAG DATE   # `airflow dags test` against the running demo
    python -m devtools.demo incident             # one incident, alert to post-mortem (devtools.demo_incident)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from devtools import servers

ROOT = Path(__file__).resolve().parents[1]
DEMO = Path(os.environ.get("DEMO_DIR") or ROOT / ".demo")
STATE = DEMO / "state.json"
LOCK = DEMO / "demo.lock"
S3_FOLDER = DEMO / "s3"
S3_SAVE_EVERY_S = 120
UI_PORT = int(os.environ.get("DEMO_UI_PORT", "8080"))
ALERT_TOKEN = "demo-alert-intake-token"
SEED_SCALE = int(os.environ.get("DEMO_SEED_SCALE", "200000"))


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def read_dotenv() -> dict[str, str]:
    path = ROOT / ".env"
    if not path.exists():
        return {}
    pairs = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip().strip("'\"")
    return pairs


def configured_target() -> dict[str, str]:
    env = read_dotenv() | {k: v for k, v in os.environ.items() if k.startswith("AIRFLOW_CONN_")}
    return env if "AIRFLOW_CONN_PLATFORM_DB" in env else {}


def seed_postgres(dsn: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        for ext in ("pg_stat_statements", "pgstattuple", "amcheck"):
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)))
        available = {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions")}
        if "pg_repack" in available:  # the online de-bloat path, when the server has it
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier("pg_repack")))
        conn.execute((ROOT / "include/demo/schema.sql").read_text())
        if conn.execute("SELECT count(*) FROM learning_sessions").fetchone()[0] == 0:
            say(f"seeding {SEED_SCALE:,} learning sessions, metrics and career selections")
            conn.execute((ROOT / "include/demo/seed.sql").read_text().replace(":scale", str(int(SEED_SCALE))))


def start_embedded_target(state: dict) -> dict[str, str]:
    say("no target configured: starting the embedded PostgreSQL and Redis under .demo/")
    pg = servers.start_postgres(DEMO / "postgres", port=state.get("pg_port") or servers.free_port())
    state |= {"pg_root": str(DEMO / "postgres"), "pg_port": pg.port}
    import psycopg

    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'pathfinity'").fetchone():
            conn.execute("CREATE DATABASE pathfinity")
    seed_postgres(pg.dsn("pathfinity"))
    # Keys persist in an append-only file under .demo/redis, so a restart keeps the cache as it was.
    redis = servers.start_redis(DEMO / "redis", port=state.get("redis_port") or servers.free_port(),
                                args=["--maxmemory", "256mb", "--appendonly", "yes"])
    state |= {"redis_pid": redis.process.pid, "redis_port": redis.port}
    import redis as redis_client

    kept = redis_client.Redis.from_url(redis.url()).dbsize()
    if kept:
        say(f"redis: {kept:,} keys kept from the last run")
    else:
        from include.demo.redis_seed import seed

        say(f"redis: seeded {seed(redis.url()):,} keys")
    start_monitoring(state, pg.dsn("pathfinity"), redis.url())
    return {
        "AIRFLOW_CONN_PLATFORM_DB": pg.conn_json("pathfinity"),
        "AIRFLOW_CONN_PLATFORM_REDIS": redis.conn_json(),
    } | start_embedded_services(state)


def start_monitoring(state: dict, dsn: str, redis_url: str) -> None:
    """Prometheus (its TSDB kept in .demo/prometheus) with the platform's rules, scraping the demo's
    PostgreSQL and Redis through Debian's exporters, and Alertmanager beside it."""
    from devtools import prom

    try:
        exporters = [prom.start_exporter(DEMO / "exporters", "postgres", dsn + "?sslmode=disable"
                                         if "?" not in dsn else dsn),
                     prom.start_exporter(DEMO / "exporters", "redis", redis_url)]
        # Its notifications go to the alert intake on the demo's Airflow: alerts open incidents
        # once maintenance_incident is unpaused.
        alertmanager = prom.start_alertmanager(DEMO / "alertmanager", webhook_token=ALERT_TOKEN,
                                               webhook=f"http://127.0.0.1:{UI_PORT}/maintenance/alertmanager")
        from devtools.demo_incident import demo_rules

        rules = demo_rules(ROOT / "include/prometheus/platform-rules.yml", DEMO / "platform-rules.yml")
        prometheus = prom.start_prometheus(
            DEMO / "prometheus", rule_files=[rules],
            scrape={"postgres": [f"127.0.0.1:{exporters[0].port}"], "redis": [f"127.0.0.1:{exporters[1].port}"]},
            alertmanager=alertmanager.url)
    except RuntimeError as exc:  # not installed: the demo runs without its monitoring
        say(f"no monitoring in this demo: {exc}")
        return
    state |= {"prometheus_url": prometheus.url, "alertmanager_url": alertmanager.url,
              "monitoring_pids": [s.process.pid for s in (*exporters, alertmanager, prometheus)]}
    say(f"Prometheus {prometheus.url} (rules: include/prometheus/platform-rules.yml, a quicker "
        "PostgresIdleInTransaction for `make demo-incident`), "
        f"Alertmanager {alertmanager.url}")


def quiet_servers_log() -> None:
    """The in-process servers' request logs (moto's werkzeug) go to .demo/servers.log, not the terminal."""
    import logging

    handler = logging.FileHandler(DEMO / "servers.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    for name in ("werkzeug", "moto", "botocore", "urllib3"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False


def start_embedded_services(state: dict) -> dict[str, str]:
    """S3 (moto's server, its objects restored from .demo/s3) and a local Slack that appends every
    message to .demo/slack-messages.log.

    They run in this process, so they live exactly as long as `make demo`.
    """
    import threading

    from moto.server import ThreadedMotoServer

    from devtools import s3_snapshot
    from devtools.slack_server import start_slack_server

    quiet_servers_log()
    s3_port = servers.free_port()
    ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False).start()
    endpoint = f"http://127.0.0.1:{s3_port}"
    state["s3_endpoint"] = endpoint
    restored = s3_snapshot.restore(endpoint, S3_FOLDER)
    if restored:
        say(f"S3: {restored} objects kept from the last run (.demo/s3)")

    def keep_saving():
        while True:
            time.sleep(S3_SAVE_EVERY_S)
            s3_snapshot.save(endpoint, S3_FOLDER)

    threading.Thread(target=keep_saving, daemon=True, name="s3-snapshot").start()
    slack, _ = start_slack_server(log_to=DEMO / "slack-messages.log")
    say(f"embedded S3 on :{s3_port}; Slack messages go to .demo/slack-messages.log")
    from devtools.pagerduty_server import start_pagerduty_server

    pagerduty, _ = start_pagerduty_server(DEMO / "pagerduty")
    say(f"a local PagerDuty Events API v2 on {pagerduty.url} (devtools/pagerduty_server.py) takes the pages")
    return {
        "AIRFLOW_CONN_PAGERDUTY_EVENTS": json.dumps({
            "conn_type": "pagerduty_events", "password": "demo0000demo0000demo0000demo0000", "host": pagerduty.url,
            "extra": {"verify": str(pagerduty.cert)}}),
        # Alertmanager's bearer token for the alert intake (plugins/maintenance_alert_intake.py).
        "AIRFLOW_VAR_MAINTENANCE_ALERT_TOKEN": ALERT_TOKEN,
        "AIRFLOW_CONN_PLATFORM_AWS": json.dumps({
            "conn_type": "aws", "login": "demo", "password": "demo",
            "extra": {"region_name": "us-east-1", "endpoint_url": f"http://127.0.0.1:{s3_port}"}}),
        "AIRFLOW_CONN_SLACK_ONCALL": json.dumps({
            "conn_type": "slack", "password": "xoxb-demo", "extra": {"base_url": slack.api_url}}),
    }


def start_demo_cluster() -> dict[str, str]:
    """A stand-in Kubernetes API (devtools/kube_server.py, the one the tests use; not a cluster):
    three nodes, one marked for a reboot and one on an old kernel, a finished pod, a workload
    near its memory limit, and a reboot agent that "reboots" a drained node after 5 seconds."""
    from datetime import UTC, datetime

    from devtools.kube_objects import deployment, metrics, node, pod, replicaset
    from devtools.kube_server import Cluster, kubernetes_connection, start_kube_server

    now = datetime.now(UTC)
    old = node("node-c")
    old["status"]["nodeInfo"] |= {"kernelVersion": "5.10.0-26-cloud-amd64", "osImage": "Debian GNU/Linux 11"}
    cluster = Cluster(nodes=[node("node-a", marked=True), node("node-b"), old],
                      pods=[pod("report-27", "jobs", phase="Succeeded", age=600, node="node-b", now=now),
                            pod("api-7d9f-x", owner=("ReplicaSet", "api-7d9f"), labels={"app": "api"}, now=now)],
                      deployments=[deployment("api")], replicasets=[replicaset("api-7d9f", "api")],
                      metrics=[metrics("api-7d9f-x", "web", "490Mi")], reboot_after_drain=5)
    url, _ = start_kube_server(cluster)
    say(f"stand-in Kubernetes API on {url} (devtools/kube_server.py; not a cluster)")
    return {"AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(kubernetes_connection(url))}


def create_pools(env: dict[str, str]) -> None:
    """The pools the DAGs run in (the scheduler holds tasks whose pool does not exist)."""
    from maintenance.dagkit import required_pools

    airflow = str(Path(sys.executable).parent / "airflow")
    path = DEMO / "pools.json"
    path.write_text(json.dumps(required_pools()))  # what devtools.pools prints
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([airflow, "pools", "import", str(path)], env=env, check=True, capture_output=True)
    say(f"pools: {', '.join(required_pools())}")


def demo_window_day(policy: dict):
    """The demo's planned window: the first day a week or so ahead whose window is at least the
    policy's notice away, so `make demo-notice` can announce it in time."""
    from datetime import datetime, time, timedelta
    from zoneinfo import ZoneInfo

    now = datetime.now(ZoneInfo(policy.get("timezone", "America/New_York")))
    window = policy["planned_window"]
    start = time.fromisoformat(str(window.get("start", "02:00")))
    days = int(window.get("notice_days", 7)) + (1 if now.time() > start else 0)
    return now.date() + timedelta(days=days)


def demo_policy(state: dict) -> Path:
    """The project's policy plus the demo's own log folder (with logs to rotate) and lock files."""
    import yaml

    logs = DEMO / "logs" / "api"
    logs.mkdir(parents=True, exist_ok=True)
    for name in ("api.log", "worker.log"):
        with open(logs / name, "a") as handle:
            handle.writelines(f"2026-11-27T00:{n % 60:02d}:00Z GET /api/careers/pool 200 {n % 90}ms\n"
                              for n in range(5000))
    policy = yaml.safe_load((ROOT / "include/maintenance_policy.yaml").read_text())
    policy["logs"]["folders"] = [{"name": "api", "path": str(logs), "retention_days": 1}]
    # The security scan and reviews ask a local server speaking the OSV and registry APIs,
    # with a few advisories (include/demo/advisories.json), about the demo's lock files.
    from devtools.osv_server import start_osv_server

    osv_url, _ = start_osv_server(ROOT / "include/demo/advisories.json")
    policy["security"] |= {"osv_url": osv_url, "pypi_url": osv_url, "npm_url": osv_url, "lock_files": [
        str(ROOT / "include/demo/package-lock.json"), str(ROOT / "include/demo/requirements-platform.lock")]}
    policy["documentation"]["folders"] = [{"path": str(ROOT / "docs")}]  # Friday reviews this project's docs
    if state.get("prometheus_url"):  # the alert review, silences and the alert gate use the demo's stack
        policy["monitoring"] |= {"prometheus_url": state["prometheus_url"],
                                 "alertmanager_url": state["alertmanager_url"]}
    from devtools.demo_incident import demo_incidents

    demo_incidents(policy, ROOT / "include/incident_playbooks.yaml")  # `make demo-incident`'s quicker playbook
    policy["planned_window"]["dates"] = [demo_window_day(policy).isoformat()]  # `make demo-notice` announces it
    for table in policy["archive"]["tables"]:  # the archive's full months also go to S3
        table["export"] = {"bucket": "pathfinity-archive", "prefix": "archive/"}
    path = DEMO / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def write_airflow_cfg(home: Path) -> None:
    """The demo's settings in its airflow.cfg too, so any `airflow` command with this
    AIRFLOW_HOME finds the DAGs and never loads Airflow's example DAGs. The secrets every
    component must share (the JWT secret signing task tokens, the API's secret key) are made
    once and kept: a component that made its own would refuse the others' tokens."""
    import configparser
    import secrets

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(home / "airflow.cfg")
    jwt_secret = cfg.get("api_auth", "jwt_secret", fallback="") or secrets.token_urlsafe(32)
    secret_key = cfg.get("api", "secret_key", fallback="") or secrets.token_urlsafe(32)
    (home / "airflow.cfg").write_text(
        "[api_auth]\n"
        f"jwt_secret = {jwt_secret}\n"
        "[core]\n"
        f"dags_folder = {ROOT / 'dags'}\n"
        f"plugins_folder = {ROOT / 'plugins'}\n"
        "load_examples = False\n"
        "parallelism = 4\n"
        "dags_are_paused_at_creation = True\n"
        "[database]\n"
        f"sql_alchemy_conn = sqlite:///{home}/airflow.db\n"
        "[api]\n"
        f"port = {UI_PORT}\n"
        f"secret_key = {secret_key}\n")


def airflow_env(connections: dict[str, str], policy: Path | None = None) -> dict[str, str]:
    home = DEMO / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    write_airflow_cfg(home)
    return os.environ | connections | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",  # sized for a 2-core machine
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__API__PORT": str(UI_PORT),
        "MAINTENANCE_POLICY_FILE": str(policy or ROOT / "include/maintenance_policy.yaml"),
        # standalone starts its components as `airflow ...` subprocesses
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), os.environ.get("PYTHONPATH")])),
    }


def wait_for_ui(timeout: float = 240) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{UI_PORT}/api/v2/version", timeout=2) as reply:
                if reply.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"the Airflow UI did not answer on port {UI_PORT} within {timeout:.0f}s")


def admin_password() -> str:
    path = DEMO / "airflow" / "simple_auth_manager_passwords.json.generated"
    for _ in range(30):
        if path.exists():
            return json.loads(path.read_text()).get("admin", "?")
        time.sleep(1)
    return f"(see {path})"


def hold_the_lock():
    """Only one demo at a time: the lock is held for as long as `up` runs (released by the
    kernel if it dies). Returns the open lock file, or None when another demo holds it."""
    import fcntl

    DEMO.mkdir(exist_ok=True)
    handle = LOCK.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def up(executor: str = "standalone") -> int:
    """The demo: `airflow standalone` (LocalExecutor), or with ``executor="celery"`` the compose
    stack's topology as processes (devtools.topology): CeleryExecutor with a Redis broker and a
    PostgreSQL metadata database of its own, scheduler, DAG processor, triggerer, API server and
    two Celery workers."""
    began = time.monotonic()
    lock = hold_the_lock()
    if lock is None:
        state = json.loads(STATE.read_text()) if STATE.exists() else {}
        say(f"a demo is already running (pid {state.get('pid', '?')}): {state.get('url', 'see .demo/state.json')}")
        say("use that one, or stop it first with `make demo-stop`")
        return 1
    from devtools import reaper

    state = json.loads(STATE.read_text()) if STATE.exists() else {}
    state = {k: state[k] for k in ("pg_port", "redis_port", "meta_port") if k in state} | {"pid": os.getpid()}
    (DEMO / "servers.jsonl").unlink(missing_ok=True)
    reaper.watch(DEMO / "servers.jsonl")  # if this process is killed, its servers do not outlive it
    target = configured_target()
    if target:
        say("using the configured target (AIRFLOW_CONN_* from the environment or .env); starting no servers")
        connections = target
        policy = None
    else:
        connections = start_embedded_target(state) | start_demo_cluster()
        policy = demo_policy(state)
        shown = policy.relative_to(ROOT) if policy.is_relative_to(ROOT) else policy
        say(f"policy: {shown} (the project's, plus the demo's log folder, lock files and monitoring)")
    env = airflow_env(connections, policy)
    sys.path.insert(0, str(ROOT / "plugins"))
    state |= {"url": f"http://localhost:{UI_PORT}", "connections": connections,
              "policy": str(policy) if policy else None}
    proc, password = start_airflow(executor, state, env, connections, policy)
    STATE.write_text(json.dumps(state))
    try:
        wait_for_ui()
        say(f"Airflow UI: http://localhost:{UI_PORT}  login: admin / {password or admin_password()}")
        say(f"ready in {time.monotonic() - began:.0f}s. DAGs start paused: trigger them in the UI. Unpausing makes a "
            "catch-up run of the latest missed time, which skips its gated work (README).")
        say("Ctrl-C (or `make demo-stop` from another shell) stops everything.")
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if state.get("s3_endpoint"):
            from devtools import s3_snapshot

            say(f"S3: saved {s3_snapshot.save(state['s3_endpoint'], S3_FOLDER)} changed objects to .demo/s3")
        down()
        lock.close()
    return 0


def start_airflow(executor: str, state: dict, env: dict, connections: dict[str, str], policy: Path | None):
    """Airflow's components; returns the process the demo waits on and the admin's password
    when known now (standalone's is read once it has made it)."""
    if executor == "celery":
        stack = start_celery(state, connections, policy)
        password = json.loads((stack.home / "simple_auth_manager_passwords.json").read_text())["admin"]
        return stack.processes["scheduler"], password
    create_pools(env)
    log = (DEMO / "airflow-standalone.log").open("ab")
    say("starting airflow standalone (log: .demo/airflow-standalone.log)")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "standalone"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    state["airflow_pgids"] = [proc.pid]
    return proc, None


def start_celery(state: dict, connections: dict[str, str], policy: Path | None):
    """The Celery topology (devtools.topology) against the demo's target: its own metadata
    PostgreSQL and Redis broker under .demo/, set up by devtools.stack_init."""
    from devtools import topology

    meta = servers.start_postgres(DEMO / "airflow-postgres", port=state.get("meta_port") or servers.free_port())
    broker = servers.start_redis(DEMO / "broker")
    state |= {"meta_root": str(DEMO / "airflow-postgres"), "meta_port": meta.port, "broker_pid": broker.process.pid}
    import psycopg

    with psycopg.connect(meta.dsn(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'airflow'").fetchone():
            conn.execute("CREATE DATABASE airflow")
    say("starting the Celery topology: scheduler, dag-processor, triggerer, api-server, worker1, worker2 "
        "(logs: .demo/celery/*.log)")
    dag_ids = sorted(p.stem for p in (ROOT / "dags").glob("maintenance_*.py"))
    policy_file = str(policy or ROOT / "include/maintenance_policy.yaml")
    stack = topology.start(DEMO / "celery", dags_folder=ROOT / "dags", dag_ids=dag_ids,
                           metadata_dsn=meta.dsn("airflow"), broker_url=broker.url(0), api_port=UI_PORT,
                           parallelism=4, unpause=False, say=say,
                           extra_env=connections | {"MAINTENANCE_POLICY_FILE": policy_file})
    state["airflow_pgids"] = [p.pid for p in stack.processes.values()]
    # `make demo-incident` and `make demo-notice` talk to this installation, not standalone's.
    state["airflow_env"] = {k: v for k, v in stack.env.items() if k.startswith(("AIRFLOW", "MAINTENANCE"))}
    return stack


def running_env(state: dict) -> dict[str, str]:
    """The environment of the running demo's Airflow (standalone's, or the Celery topology's)."""
    env = airflow_env(state["connections"], Path(state["policy"]))
    return env | state.get("airflow_env", {})


def dags_test(dag_id: str, date: str) -> int:
    """One run of DAG for DATE without the scheduler (devtools.run_dag, as `airflow dags test`), with
    the running demo's connections, policy and Airflow home."""
    state = json.loads(STATE.read_text()) if STATE.exists() else {}
    target = configured_target()
    if not target and not state.get("connections"):
        say("no demo is running and no target is configured: start `make demo` first (another shell)")
        return 1
    env = airflow_env(target or state["connections"], Path(state["policy"]) if state.get("policy") else None)
    return subprocess.run([sys.executable, "-m", "devtools.run_dag", dag_id, date], env=env, cwd=ROOT,
                          check=False).returncode


def _stop_group(pgid: int, grace: float = 20) -> None:
    try:
        os.killpg(pgid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    try:
        os.killpg(pgid, signal.SIGKILL)  # standalone sometimes hangs on shutdown
    except ProcessLookupError:
        pass


def down() -> int:
    if not STATE.exists():
        say("nothing to stop")
        return 0
    state = json.loads(STATE.read_text())
    if state.get("airflow_pgids"):
        say("stopping airflow")
        for pgid in state["airflow_pgids"]:
            _stop_group(pgid)
    for key in ("redis_pid", "broker_pid", *state.get("monitoring_pids", [])):
        pid = state.get(key) if key in ("redis_pid", "broker_pid") else key
        try:
            if pid:
                os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if state.get("pg_root"):
        say("stopping the embedded PostgreSQL")
        servers.stop_postgres(Path(state["pg_root"]))
    if state.get("meta_root"):
        servers.stop_postgres(Path(state["meta_root"]))
    STATE.write_text(json.dumps({k: state[k] for k in ("pg_port", "redis_port", "meta_port") if k in state}))
    return 0


def incident() -> int:
    """One incident from alert to post-mortem on the running demo (devtools.demo_incident)."""
    from devtools import demo_incident

    state = json.loads(STATE.read_text()) if STATE.exists() else {}
    if not state.get("airflow_pgids") or not state.get("policy"):
        say("no embedded demo is running: start `make demo` first (another shell)")
        return 1
    return demo_incident.run(state, running_env(state), say)


def notice() -> int:
    """The demo's window announced (devtools.demo_notice): the notice to the stakeholders'
    channel, the Change Advisory Board's approval waiting in the UI, the calendar page."""
    state = json.loads(STATE.read_text()) if STATE.exists() else {}
    if not state.get("airflow_pgids") or not state.get("policy"):
        say("no embedded demo is running: start `make demo` first (another shell)")
        return 1
    env = running_env(state)
    say("unpausing maintenance_window_approval (the notice asks the board through it)")
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "dags", "unpause", "maintenance_window_approval"],
                   env=env, cwd=ROOT, check=True, capture_output=True)
    from datetime import datetime
    from zoneinfo import ZoneInfo

    import yaml

    policy = yaml.safe_load(Path(state["policy"]).read_text())
    today = datetime.now(ZoneInfo(policy.get("timezone", "America/New_York"))).date().isoformat()
    say(f"running maintenance_daily {today}: window_notice and request_approval only")
    code = subprocess.run([sys.executable, "-m", "devtools.run_dag", "maintenance_daily", today, "{}",
                           r"^(?!(window_notice|request_approval)$).*"], env=env, cwd=ROOT, check=False).returncode
    if code == 0:
        say(f"notice sent to {policy['notifications'].get('stakeholders_channel', '#maintenance-announcements')} "
            f"(the demo's Slack log: .demo/servers.log) for the window of {policy['planned_window']['dates'][0]}")
        say("the approval waits: http://localhost:8080/dags/maintenance_window_approval (Required actions); "
            "the calendar: http://localhost:8080/plugin/maintenance-calendar")
    return code


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    if command == "dags-test":
        sys.exit(dags_test(*sys.argv[2:4]))
    if command == "incident":
        sys.exit(incident())
    if command == "notice":
        sys.exit(notice())
    if command == "celery":
        sys.exit(up("celery"))
    sys.exit({"up": up, "down": down}[command]())
