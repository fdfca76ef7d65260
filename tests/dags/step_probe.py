"""DAGs for tests only: one planned de-bloat step each, as the monthly DAG's mapped step task
runs it, with no gate in front: the platform's load, and the window for a VACUUM FULL, are the
step's own business when its turn comes. ``step_probe`` repacks, ``rewrite_probe`` rewrites."""

from datetime import datetime

from airflow.sdk import DAG
from maintenance import dagkit
from maintenance.postgres.operators import PostgresStepOperator

TABLE = {"kind": "table", "schema": "public", "name": "held_back", "table": "held_back", "bytes": 0,
         "why": "bloated on purpose"}

for dag_id, action in (("step_probe", "repack"), ("rewrite_probe", "vacuum_full")):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        default_args=dagkit.default_args(retries=0),
        params=dagkit.trigger_form(destructive=True),
        tags=["test"],
    ) as dag:
        PostgresStepOperator(task_id="debloat", conn_id="platform_db",
                             step={"label": f"{action} public.held_back", "action": action,
                                   "relations": [TABLE | {"action": action}]})
    globals()[dag_id] = dag
