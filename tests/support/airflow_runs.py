"""Running DAGs with dag.test() and reading what happened."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def reschedules(dag_id: str, run_id: str, task_id: str | None = None) -> int:
    """How many times the run's tasks (or one task) were rescheduled: waited, holding no slot."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    where = [TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id]
    if task_id is not None:
        where.append(TaskInstance.task_id == task_id)
    with create_session() as session:
        return session.scalar(select(func.count()).select_from(TaskReschedule).join(
            TaskInstance, TaskInstance.id == TaskReschedule.ti_id).where(*where))


def load_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    for folder in (ROOT / "dags", ROOT / "tests" / "dags"):
        for path in folder.glob("*.py"):
            if dag_id in path.read_text():
                bag = DagBag(dag_folder=str(path))
                if dag_id in bag.dags:
                    return bag.dags[dag_id]
    raise LookupError(dag_id)


class RunResult:
    def __init__(self, dag_run):
        self.run = dag_run
        self.states: dict[str, str] = {}
        self.mapped: dict[str, dict[str, str]] = {}  # mapped task -> {its instance's name: state}
        for ti in sorted(dag_run.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
            state = str(ti.state)
            if ti.map_index >= 0:
                self.mapped.setdefault(ti.task_id, {})[ti.rendered_map_index or str(ti.map_index)] = state
                # A mapped task is as good as its worst instance.
                if self.states.get(ti.task_id, "success") != "success":
                    continue
            self.states[ti.task_id] = state
        # Every gated DAG has the emergency approval request; skipped (the run was not forced, or
        # nothing stood in the way) it is not news, here as in the run summary. Its own tests
        # read it from `emergency`.
        self.emergency = self.states.get("emergency_approval")
        if self.emergency == "skipped":
            del self.states["emergency_approval"]

    @property
    def state(self) -> str:
        return str(self.run.state)

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1):
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            row = session.execute(
                select(XComModel.value).where(
                    XComModel.dag_id == self.run.dag_id, XComModel.run_id == self.run.run_id,
                    XComModel.task_id == task_id, XComModel.key == key, XComModel.map_index == map_index)
            ).scalar_one_or_none()
        return None if row is None else XComModel.deserialize_value(type("X", (), {"value": row})())

    def check_xcoms_travel(self) -> None:
        """Every XCom of the run must encode as a worker sends it (msgpack through the task SDK's
        comms): dag.test() runs tasks in-process and would not notice, e.g., an integer wider than
        64 bits, which fails the task on a real worker."""
        import msgspec
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            rows = session.execute(select(XComModel.task_id, XComModel.key, XComModel.value).where(
                XComModel.dag_id == self.run.dag_id, XComModel.run_id == self.run.run_id)).all()
        for task_id, key, raw in rows:
            value = XComModel.deserialize_value(type("X", (), {"value": raw})())
            try:
                msgspec.msgpack.encode(value)
            except (OverflowError, TypeError) as exc:
                raise AssertionError(f"XCom {key!r} of {task_id} cannot reach a real worker's XCom: {exc}") from exc

    def reschedules(self, task_id: str) -> int:
        return reschedules(self.run.dag_id, self.run.run_id, task_id)


# The daily DAG's backup tasks, for tests about its other work (they need S3 and a dump).
BACKUP_TASKS = r"^(backup|verify_backup)$"


def run_dag(dag_id: str, logical_date: datetime, conf: dict | None = None, *,
            mark_success_pattern: str | None = None, queued_at: datetime | None = None) -> RunResult:
    """Run a DAG in-process; tasks matching ``mark_success_pattern`` are marked done, not run.

    ``queued_at``: the run is a scheduled one, as the scheduler makes it (run type ``scheduled``,
    queued at that instant), instead of dag.test()'s manual run."""
    from contextlib import nullcontext

    dag = load_dag(dag_id)
    # dag.test() of Airflow 3.3 fails on the second run of a DAG with a deadline alert (it reads the
    # alert's stored form as an id); deadlines are the scheduler's, tested in test_project.py.
    dag.deadline = None
    with _as_scheduled(queued_at) if queued_at else nullcontext():
        run = dag.test(logical_date=logical_date, run_conf=conf, mark_success_pattern=mark_success_pattern)
    result = RunResult(run)
    result.check_xcoms_travel()
    return result


def _as_scheduled(queued_at: datetime):
    """dag.test() creates a manual run; this turns it into a scheduled run queued at ``queued_at``."""
    from unittest import mock

    from airflow.models import dagrun
    from airflow.utils.types import DagRunType

    create = dagrun.get_or_create_dagrun

    def scheduled(*, session, **kwargs):
        run = create(session=session, **kwargs)
        run.run_type, run.queued_at, run.start_date = DagRunType.SCHEDULED, queued_at, queued_at
        run.run_after = run.logical_date  # the scheduler's run is due at its logical date
        session.merge(run)
        session.commit()
        return run

    return mock.patch.object(dagrun, "get_or_create_dagrun", scheduled)


def unpause(dag_id: str, *, paused: bool = False) -> None:
    """Unpause (or pause) ``dag_id`` in the test's Airflow, writing the project's DAGs to it
    first when it does not know the DAG yet (as dag.test() does for a DAG's siblings)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        if session.get(DagModel, dag_id) is None:
            manager = DagBundlesManager()
            manager.sync_bundles_to_db(session=session)
            session.commit()
            for bundle in manager.get_all_dag_bundles():
                if not bundle.is_initialized:
                    bundle.initialize()
                sync_bag_to_db(BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name),
                               bundle.name, bundle.version)
    with create_session() as session:
        session.get(DagModel, dag_id).is_paused = paused


def delete_runs(dag_id: str) -> None:
    """Forget the runs of ``dag_id`` in the test's Airflow (a test that counts them starts clean)."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for run in session.query(DagRun).filter_by(dag_id=dag_id).all():
            session.delete(run)
