"""DAGs for bench/per_table_scaling.py only: the daily statistics as the daily DAG wires them
(``plan_db_statistics`` then ``db_statistics`` mapped over its steps), with no gate and no
wait: over a schema with no tables (Airflow's own cost of the two tasks), batched as the
policy says, and one task instance per table (the sample schema, see the benchmark)."""

from datetime import datetime

from airflow.sdk import DAG
from maintenance import dagkit
from maintenance.postgres.operators import PostgresStatisticsOperator

for dag_id, schema, tables_per_step in (("statistics_empty", "empty", None),
                                        ("statistics_batched", "public", None),
                                        ("statistics_one_per_table", "sample", 1)):
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
             default_args=dagkit.default_args(retries=0), params=dagkit.trigger_form(destructive=False),
             tags=["bench"]) as dag:
        def make(schema=schema, tables_per_step=tables_per_step, **kwargs):
            return PostgresStatisticsOperator(schemas=[schema], tables_per_step=tables_per_step, **kwargs)

        dagkit.per_table(make, "db_statistics")
    globals()[dag_id] = dag
