"""Record an incident where on-call already works: open or resolve it from the trigger form.

The ledger's incidents feed the KPIs (uptime, MTTR, MTBF, downtime, change failure rate)
in the weekly and monthly reports."""

from datetime import datetime

from airflow.sdk import DAG
from maintenance import dagkit, form
from maintenance.incidents.operators import RecordIncidentOperator

with DAG(
    dag_id="maintenance_incident",
    schedule=None,  # on demand only: a form, not a job
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=4,
    default_args=dagkit.default_args(),
    params=form.incident_fields(),
    tags=["maintenance", "incident", "on-demand"],
    doc_md=__doc__,
) as dag:
    RecordIncidentOperator(task_id="record_incident")
