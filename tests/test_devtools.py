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


def test_a_second_demo_is_refused_naming_the_running_one(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from devtools import demo; lock = demo.hold_the_lock(); "
                               "print('held' if lock else 'not held', flush=True); time.sleep(60)"],
        cwd=ROOT, env=os.environ | {"DEMO_DIR": str(tmp_path)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (tmp_path / "state.json").write_text(json.dumps({"pid": holder.pid, "url": "http://localhost:8080"}))
        second = subprocess.run([sys.executable, "-m", "devtools.demo", "up"], cwd=ROOT, capture_output=True,
                                text=True, timeout=60, check=False, env=os.environ | {"DEMO_DIR": str(tmp_path)})
        assert second.returncode == 1
        assert f"a demo is already running (pid {holder.pid}): http://localhost:8080" in second.stdout
        assert not (tmp_path / "postgres").exists()  # it started nothing
    finally:
        holder.kill()
        holder.wait()


def test_the_demos_s3_survives_a_restart(tmp_path):
    """Objects saved from one S3 server come back in a fresh one; deletions are saved too. Each
    server is its own process (moto keeps its buckets in process memory), so a restart is real."""
    import boto3

    from devtools import s3_snapshot, servers

    def server():
        port = servers.free_port()
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not servers.port_open(port):
            assert time.monotonic() < deadline and process.poll() is None, "moto's server did not start"
            time.sleep(0.2)
        endpoint = f"http://127.0.0.1:{port}"
        return process, endpoint, boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                               aws_access_key_id="demo", aws_secret_access_key="demo")

    folder = tmp_path / "s3"
    first, endpoint, s3 = server()
    try:
        s3.create_bucket(Bucket="pathfinity-backups")
        s3.put_object(Bucket="pathfinity-backups", Key="postgres/db/2026-11-27/pathfinity.dump",
                      Body=b"\x00dump" * 1000)
        s3.put_object(Bucket="pathfinity-backups", Key="postgres/db/2026-11-27/manifest.json", Body=b"{}",
                      ContentType="application/json")
        s3.put_object(Bucket="pathfinity-backups", Key="gone-soon", Body=b"x")
        assert s3_snapshot.save(endpoint, folder) == 3
        assert s3_snapshot.save(endpoint, folder) == 0  # nothing changed: nothing written
        s3.delete_object(Bucket="pathfinity-backups", Key="gone-soon")
        s3_snapshot.save(endpoint, folder)
    finally:
        first.kill()
        first.wait()

    second, endpoint, s3 = server()
    try:
        assert s3.list_buckets()["Buckets"] == []  # a new server: nothing until restored
        assert s3_snapshot.restore(endpoint, folder) == 2
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="pathfinity-backups")["Contents"])
        assert keys == ["postgres/db/2026-11-27/manifest.json", "postgres/db/2026-11-27/pathfinity.dump"]
        got = s3.get_object(Bucket="pathfinity-backups", Key="postgres/db/2026-11-27/manifest.json")
        assert got["ContentType"] == "application/json"
        assert s3.get_object(Bucket="pathfinity-backups",
                             Key="postgres/db/2026-11-27/pathfinity.dump")["Body"].read() == b"\x00dump" * 1000
    finally:
        second.kill()
        second.wait()


def test_the_documented_pools_command_creates_every_pool_the_dags_use(airflow_db, tmp_path):
    """`python -m devtools.pools | airflow pools import`: what `make pools` and the compose init run."""
    env = os.environ | {"PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}"}
    listed = subprocess.run([sys.executable, "-m", "devtools.pools"], cwd=ROOT, env=env, capture_output=True,
                            text=True, check=True, timeout=120).stdout
    (tmp_path / "pools.json").write_text(listed)
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "pools", "import", str(tmp_path / "pools.json")], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=180)
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.pool import Pool

    used = {t.pool for d in DagBag(dag_folder=str(ROOT / "dags")).dags.values() for t in d.tasks}
    existing = {p.pool for p in Pool.get_pools()}
    assert used - {"default_pool"} <= existing, used - existing
    assert set(json.loads(listed)) == used - {"default_pool"}


def test_stack_init_sets_up_secrets_users_pools_and_names_missing_connections(tmp_path):
    """What the compose stack's init service and `make celery` run: run twice, the shared secrets
    and passwords stay (a component started in between keeps working), the policy's approvers
    can log in, the pools exist, and each connection the policy names but nobody defined is
    listed with the fields that name it."""
    import configparser
    import sqlite3

    import yaml

    policy = yaml.safe_load((ROOT / "include" / "maintenance_policy.yaml").read_text())
    policy["planned_window"]["approvers"] = ["cab.chair"]
    policy["emergency"] |= {"oncall_leads": ["lead.one"], "directors": ["director.one"]}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    (tmp_path / "connections.json").write_text(json.dumps(
        {"slack_oncall": {"conn_type": "slack", "password": "xoxb-test"}}))
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))} | {
        "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "MAINTENANCE_POLICY_FILE": str(tmp_path / "policy.yaml"),
        "MAINTENANCE_CONNECTIONS_FILE": str(tmp_path / "connections.json"),
        "AIRFLOW_CONN_PLATFORM_DB": "postgresql://u@127.0.0.1:1/db",
        "_AIRFLOW_WWW_USER_USERNAME": "airflow", "_AIRFLOW_WWW_USER_PASSWORD": "s3cret",
        "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}"}

    def init() -> str:
        done = subprocess.run([sys.executable, "-m", "devtools.stack_init"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    said = init()
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(home / "airflow.cfg")
    secrets = {key: cfg.get(section, key) for section, key in
               (("api_auth", "jwt_secret"), ("api", "secret_key"), ("core", "fernet_key"))}
    assert all(len(value) >= 32 for value in secrets.values()), secrets
    assert cfg.get("core", "simple_auth_manager_users") == \
        "airflow:admin,cab.chair:user,lead.one:user,director.one:user"
    passwords = json.loads((home / "simple_auth_manager_passwords.json").read_text())
    assert passwords["airflow"] == "s3cret" and set(passwords) == {"airflow", "cab.chair", "lead.one", "director.one"}
    assert oct((home / "airflow.cfg").stat().st_mode)[-3:] == "600"
    assert "connection 'platform_aws' is not defined (named by connections.aws)" in said
    assert "'slack_oncall'" not in said and "'platform_db'" not in said  # imported / from the environment
    with sqlite3.connect(home / "airflow.db") as meta:
        pools = {name for (name,) in meta.execute("SELECT pool FROM slot_pool")}
    assert {"pg_platform_db", "redis_platform", "kubernetes_nodes"} <= pools

    init()  # again: nothing made anew
    again = configparser.ConfigParser(interpolation=None)
    again.read(home / "airflow.cfg")
    assert {key: again.get(section, key) for section, key in
            (("api_auth", "jwt_secret"), ("api", "secret_key"), ("core", "fernet_key"))} == secrets
    assert json.loads((home / "simple_auth_manager_passwords.json").read_text()) == passwords
