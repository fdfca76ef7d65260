"""Emergency approvals answered for a forced run under dag.test()."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


def answer_when_asked(platform, answers: dict[str, tuple[str, str]], *,
                      after_a_gate_waits: bool = False) -> threading.Thread:
    """Stand in for maintenance_emergency_approval's record task (its HITL tasks are answered in
    test_change.py against a real API server): once the forced run has asked, write the on-call
    lead's and the director's answers to the ledger as that task does.

    The request and the gates are not ordered in a run, so a gate may look only after the answers
    are in. With `after_a_gate_waits` the answers come once a gate has rescheduled, as a person's
    do: a test can then show that a gate waited for them."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from maintenance.change.emergency import APPROVAL_DAG
    from maintenance.ledger import notices
    from sqlalchemy import select

    from tests.support.airflow_runs import reschedules

    def answer():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:  # SQLite may be busy with the run itself for a moment: look again
                with create_session() as session:
                    asked = session.scalars(select(DagRun).where(DagRun.dag_id == APPROVAL_DAG)).all()
                    conf = next((r.conf for r in asked if r.run_id not in before), None)
                if conf and after_a_gate_waits and not reschedules(conf["dag_id"], conf["run_id"]):
                    conf = None
            except Exception:
                conf = None
            if conf:
                with platform.connect() as conn:
                    for role, (decision, who) in answers.items():
                        notices.record_emergency(conn, "maintenance", dag_id=conf["dag_id"], run_id=conf["run_id"],
                                                 role=role, decision=decision, decided_by=who,
                                                 decided_at=datetime.now(UTC), reason=conf["reason"],
                                                 approval_run_id=f"emergency__{conf['dag_id']}__{conf['run_id']}")
                return
            time.sleep(0.5)

    with create_session() as session:
        before = {r.run_id for r in session.scalars(select(DagRun).where(DagRun.dag_id == APPROVAL_DAG))}
    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread
