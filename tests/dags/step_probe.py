"""A DAG for tests only: one planned de-bloat step, as the monthly DAG's mapped step task runs it,
with no gate in front: the platform's load is the step's own business when its turn comes."""

from datetime import datetime

from airflow.sdk import DAG
from maintenance import dagkit
from maintenance.postgres.operators import PostgresStepOperator

TABLE = {"kind": "table", "schema": "public", "name": "held_back", "table": "held_back", "bytes": 0,
         "action": "repack", "why": "bloated on purpose"}

with DAG(
    dag_id="step_probe",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=dagkit.default_args(retries=0),
    params=dagkit.trigger_form(destructive=True),
    tags=["test"],
) as dag:
    PostgresStepOperator(task_id="debloat", conn_id="platform_db",
                         step={"label": "repack public.held_back", "action": "repack", "relations": [TABLE]})
