"""Project integrity: the DAGs parse and follow the house rules; the compose file is valid."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DAG_FILES = sorted(p.name for p in (ROOT / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) == len(DAG_FILES)  # one DAG per file


@pytest.mark.parametrize("dag_file", DAG_FILES)
def test_dag_follows_house_rules(dagbag, dag_file):
    from airflow.sdk import CronTriggerTimetable

    (dag,) = [d for d in dagbag.dags.values() if Path(d.fileloc).name == dag_file]
    assert dag.tags and "maintenance" in dag.tags
    assert dag.catchup is False
    assert dag.max_active_runs == 1 or "on-demand" in dag.tags
    assert dag.doc_md
    if "on-demand" in dag.tags:  # a form, triggered by people only
        assert type(dag.timetable).__name__ == "NullTimetable"
    else:
        assert "Policy in force" in dag.doc_md
        assert isinstance(dag.timetable, CronTriggerTimetable)
        assert str(dag.timetable.timezone) == "America/New_York"
        assert {"dry_run", "force_reason"} <= set(dag.params.keys())
    for task in dag.tasks:
        assert task.owner == "platform-ops", task.task_id
        assert task.retries >= 2 or task.task_id == "run_summary", task.task_id


@pytest.mark.parametrize("dag_file", DAG_FILES)
def test_the_trigger_form_can_be_sent_with_its_defaults(dagbag, dag_file):
    """As the UI renders and validates the form: no field that a person may leave empty is
    required, and the defaults pass Airflow's validation of a triggered run."""
    from tests.support.forms import required, ui_conf

    (dag,) = [d for d in dagbag.dags.values() if Path(d.fileloc).name == dag_file]
    _, blocking = ui_conf(dag)
    assert blocking == [], f"{dag.dag_id}: Trigger stays disabled until these are filled: {blocking}"
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.schema.get("title") and param.description, (dag.dag_id, name)  # a labelled, explained field
        if param.value in (None, "", []):
            assert not required(param.schema), (dag.dag_id, name)


def test_a_forms_typed_values_are_checked_when_the_run_is_triggered(dagbag):
    from airflow.sdk import Param
    from airflow.sdk.definitions.param import ParamValidationError

    params = dagbag.dags["maintenance_daily"].params
    tables = params.get_param("tables").schema
    assert Param(["career_selections", "public.x", '"Odd Schema"."T 1"', "platform_db:public.x",
                  '"Sales ""Data"""."Order Lines ""2026"""'],
                 **tables).resolve()
    for bad in (["public..x"], ["a b.c d e f"], [""]):
        with pytest.raises(ParamValidationError):
            Param(bad, **tables).resolve()


def test_critical_work_carries_a_deadline_counted_from_the_queue_time(dagbag):
    from datetime import timedelta

    expected = {"maintenance_daily": timedelta(hours=7), "maintenance_monthly": timedelta(hours=4)}
    for dag_id, interval in expected.items():
        (alert,) = dagbag.dags[dag_id].deadline
        assert alert.interval == interval
        assert type(alert.reference).__name__ == "DagRunQueuedAtDeadline"  # backfills of old dates do not page
        assert alert.callback.path == "maintenance.notify.deadline.deadline_missed"
    critical = [t for d in dagbag.dags.values() for t in d.tasks if getattr(t, "critical", False)]
    assert {t.task_id for t in critical} >= {"backup", "verify_backup", "security_scan", "thursday.restore_test"}
    assert all(t.priority_weight == 100 and t.on_failure_callback for t in critical)


def test_a_missed_deadline_pages_oncall(slack):
    import asyncio

    from maintenance.notify.deadline import deadline_missed

    delivered = asyncio.run(deadline_missed(dag_id="maintenance_daily", promise="backups verified by 07:00",
                                            context={"dag_run": {"run_id": "scheduled__2026-11-27"}}))
    assert delivered is True
    (page,) = slack.messages("#ops-oncall")
    assert "Maintenance deadline missed" in page["text"] and "scheduled__2026-11-27" in page["text"]
    assert "backups verified by 07:00" in page["text"]


def test_dags_touch_nothing_heavy_at_parse_time():
    """Parsing a DAG file must not import hooks or clients (they cost seconds each)."""
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, 'plugins');"
        "import runpy;"
        + "".join(f"runpy.run_path('dags/{f}');" for f in DAG_FILES)
        + "heavy = [m for m in ('kubernetes', 'redis', 'boto3', 'slack_sdk', 'psycopg', 'matplotlib',"
          " 'airflow.providers.postgres.hooks.postgres') if m in sys.modules];"
          "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def compose_config() -> dict:
    """`docker-compose config`: the file as Compose reads it, validated by Compose itself (Debian's
    docker-compose; no Docker engine needed)."""
    import subprocess

    done = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yaml"), "config"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_file_is_valid_and_official_shaped():
    compose = compose_config()
    schema = json.loads((ROOT / "tests" / "support" / "compose_spec.json").read_text())
    jsonschema.validate(yaml.safe_load((ROOT / "docker-compose.yaml").read_text()), schema)
    services = compose["services"]
    airflow = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
               "airflow-worker", "airflow-init"]
    assert set(services) == {"postgres", "redis", "platform-postgres", "platform-redis", *airflow}
    for name in airflow:
        service = services[name]
        # The project's image (Dockerfile) everywhere: nothing installed at start that vanishes with it.
        assert service["image"] == "pathfinity-maintenance:3.3.2" and service["build"]["context"] == str(ROOT), name
        env = service["environment"]
        assert env["AIRFLOW_CONFIG"] == "/opt/airflow/config/airflow.cfg", name  # the shared secrets
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in env
        # A secret set in the environment would override the shared file's; so would an empty one.
        assert not {"AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY"} & set(env)
        mounts = {v.split(":")[1] for v in service.get("volumes", [])}  # host:container:mode
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include", "/opt/airflow/config"} <= mounts
    init = services["airflow-init"]
    assert "python -m devtools.stack_init" in "".join(init["command"])
    assert init["environment"]["_AIRFLOW_WWW_USER_USERNAME"] == "airflow"
    for name in airflow[:-1]:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_the_image_is_the_official_airflow_of_the_lock_with_the_lock_installed():
    dockerfile = (ROOT / "Dockerfile").read_text()
    lock = (ROOT / "requirements.lock").read_text()
    pinned = next(line.split("==")[1] for line in lock.splitlines() if line.startswith("apache-airflow=="))
    base = next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM "))
    assert base == f"apache/airflow:{pinned}-python3.11"
    assert "pip install --no-cache-dir -r /opt/airflow/requirements.lock" in dockerfile
    for folder in ("dags", "plugins", "include", "devtools"):
        assert f"COPY --chown=airflow:0 {folder} /opt/airflow/{folder}" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".demo", "config", "logs"} <= set(ignored)  # no venv, no local secrets in the image


def test_dag_versions_do_not_depend_on_the_clock(monkeypatch):
    """Airflow 3 makes a new DAG version whenever the serialized DAG changes: parsed on an
    ordinary day and in a blackout, every DAG serializes identically."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization
    from maintenance import calendar, clock
    from maintenance.policy import load_policy

    ny = ZoneInfo("America/New_York")
    ordinary, in_blackout = datetime(2026, 11, 10, 12, tzinfo=ny), datetime(2026, 12, 24, 3, tzinfo=ny)
    cal = calendar.MaintenanceCalendar.from_policy(load_policy())
    assert not cal.blackouts_at(ordinary) and cal.blackouts_at(in_blackout)
    serialized = []
    for moment in (ordinary, in_blackout):
        monkeypatch.setattr(clock, "now", lambda moment=moment: moment)
        bag = DagBag(dag_folder=str(ROOT / "dags"))
        assert bag.import_errors == {}
        serialized.append({dag_id: json.dumps(DagSerialization.to_dict(dag), sort_keys=True, default=str)
                           for dag_id, dag in bag.dags.items()})
    assert serialized[0].keys() == serialized[1].keys() and len(serialized[0]) == len(DAG_FILES)
    changed = [dag_id for dag_id in serialized[0] if serialized[0][dag_id] != serialized[1][dag_id]]
    assert changed == []


def test_the_layers_hold():
    """No import circle, no import from a lower layer into a higher one, and the picture in
    docs/architecture.md drawn from the code as it is (devtools/architecture.py)."""
    from devtools import architecture

    edges = architecture.imports()
    assert architecture.cycles(edges) == []
    assert architecture.upward(edges) == []
    assert architecture.document_picture() == architecture.picture(edges), \
        "docs/architecture.md: run python -m devtools.architecture --write"


def _calls(predicate) -> list[str]:
    """Where in plugins/ a node matching ``predicate`` occurs, as path:line."""
    import ast

    found = []
    for path in sorted((ROOT / "plugins" / "maintenance").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if predicate(node):
                found.append(f"{path.relative_to(ROOT / 'plugins')}:{node.lineno}")
    return found


def test_only_the_form_module_reads_the_trigger_form():
    import ast

    def reads_params(node) -> bool:
        key = None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            key = node.slice.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and node.args and isinstance(node.args[0], ast.Constant)):
            key = node.args[0].value
        return key == "params"

    assert {where.split(":")[0] for where in _calls(reads_params)} == {"maintenance/form.py"}


def test_the_policy_is_loaded_once_per_task_by_the_runtime():
    """Operators get the policy from their run (maintenance.run.Run); load_policy() is called by
    the operator base, the gate, the parse-time kit and the callbacks that run outside a task."""
    import ast

    def loads(node) -> bool:
        name = getattr(node.func, "id", getattr(node.func, "attr", None)) if isinstance(node, ast.Call) else None
        return name == "load_policy"

    assert {where.split(":")[0] for where in _calls(loads)} == {
        "maintenance/operator.py", "maintenance/gate/sensor.py", "maintenance/dagkit.py",
        "maintenance/notify/oncall.py", "maintenance/notify/deadline.py",
        # The alert intake and the calendar page answer on the API server, outside any task.
        "maintenance/incidents/intake.py", "maintenance/ui/app.py",
        # The emergency approval request is Airflow's TriggerDagRunOperator, not a MaintenanceOperator.
        "maintenance/change/operators.py"}
