"""Emergency maintenance's two approvals (procedures 1.1).

A maintenance run forced with a reason past a blackout, a freeze, the window or its notice asks
for this run itself (its `emergency_approval` task; run id `emergency__<dag>__<run>`). Its gates
wait, holding no worker slot, until **oncall_lead_approval** and **director_approval** are both
answered in the Airflow UI (the run's Required actions) by the people the policy names
(`emergency.oncall_leads`, `emergency.directors`), two different people. A rejection, or no
answer within `emergency.response_timeout_minutes`, skips the forced work with the reason.
**record_emergency_approval** keeps both answers, who and when, in the ledger and tells on-call
and the stakeholders."""

from datetime import datetime, timedelta

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import DAG, Param
from maintenance import dagkit
from maintenance.change.operators import RecordEmergencyApprovalOperator

emergency = dagkit.policy().emergency


def _field(title: str, description: str) -> Param:
    return Param(None, type=["null", "string"], title=title, description=description)


def _ask(task_id: str, role: str, users: list[str]) -> HITLOperator:
    return HITLOperator(
        task_id=task_id,
        subject=f"Emergency maintenance of {{{{ params.dag_id }}}}: approve as {role}?",
        body="Run {{ params.run_id }} was forced: **{{ params.reason }}**.\n\n"
             "It forces past: {{ params.forced_past }}.",
        options=["Approve", "Reject"],
        defaults=["Reject"],  # no answer in time: not approved
        assigned_users=[{"id": user, "name": user} for user in users] or None,
        response_timeout=timedelta(minutes=emergency.response_timeout_minutes),
    )


with DAG(
    dag_id="maintenance_emergency_approval",
    schedule=None,  # asked for by the forced run
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=8,
    default_args=dagkit.default_args(),
    params={"dag_id": _field("DAG", "Set by the forced run: its DAG."),
            "run_id": _field("Run", "Set by the forced run: its run id."),
            "reason": _field("Reason", "Set by the forced run: the reason it was forced with."),
            "forced_past": _field("Forced past", "Set by the forced run: the blackouts and windows it forces past.")},
    tags=["maintenance", "change", "on-demand"],
    doc_md=__doc__,
) as dag:
    asked = [_ask("oncall_lead_approval", "the on-call lead", emergency.oncall_leads),
             _ask("director_approval", "a director", emergency.directors)]
    asked >> RecordEmergencyApprovalOperator(
        task_id="record_emergency_approval", trigger_rule="all_done",
        roles={"oncall_lead": "oncall_lead_approval", "director": "director_approval"})
