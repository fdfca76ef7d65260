"""The Change Advisory Board's approval of a planned window (procedures 1.1).

Triggered by `maintenance_daily`'s `window_notice` when the window's notice goes out (one run
per window, run id `cab__<window start>`). **cab_approval** waits, holding no worker slot, for a
person the policy names (`planned_window.approvers`) to choose Approve or Reject in the Airflow
UI (the run's Required actions); no answer by the window (notice_days + 1 days) counts as a
reject. **record_approval** keeps the decision, who and when in the ledger and tells the
stakeholders. A scheduled window's disruptive work runs only once it is approved."""

from datetime import datetime, timedelta

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import DAG, Param
from maintenance import dagkit
from maintenance.change.operators import RecordApprovalOperator

window = dagkit.policy().planned_window

with DAG(
    dag_id="maintenance_window_approval",
    schedule=None,  # asked for by the window's notice
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=3,
    default_args=dagkit.default_args(),
    params={"window_start": Param(None, type=["null", "string"], format="date-time", title="Window start",
                                  description="Set by the notice: the window this run approves."),
            "notice": Param(None, type=["null", "string"], title="Notice",
                            description="Set by the notice: what the window will do.")},
    tags=["maintenance", "change", "on-demand"],
    doc_md=__doc__,
) as dag:
    ask = HITLOperator(
        task_id="cab_approval",
        subject="Approve the planned maintenance window of {{ params.window_start }}",
        body="{{ params.notice }}",
        options=["Approve", "Reject"],
        defaults=["Reject"],  # no answer in time: not approved
        assigned_users=[{"id": user, "name": user} for user in window.approvers] or None,
        response_timeout=timedelta(days=window.notice_days + 1),
    )
    ask >> RecordApprovalOperator(task_id="record_approval", approval_task_id="cab_approval",
                                  trigger_rule="all_done")
