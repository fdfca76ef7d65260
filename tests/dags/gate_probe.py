"""A DAG for tests only: the gate in front of non-critical work, critical work beside it."""

from datetime import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG
from maintenance import dagkit


def _record(name, **context):
    context["ti"].xcom_push(key="ran", value=name)
    return name


with DAG(
    dag_id="gate_probe",
    schedule=dagkit.timetable("0 0 * * *"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=dagkit.default_args(retries=0),
    params=dagkit.trigger_form(destructive=False),
    tags=["test"],
) as dag:
    gate = dagkit.gate("gate")
    routine = PythonOperator(task_id="routine_work", python_callable=_record, op_args=["routine"])
    critical = PythonOperator(task_id="critical_work", python_callable=_record, op_args=["critical"])
    window_gate = dagkit.gate("gate_window", zero_downtime=False, affected_users=5000)
    heavy = PythonOperator(task_id="heavy_work", python_callable=_record, op_args=["heavy"])
    summary = dagkit.run_summary()

    gate >> routine >> summary
    window_gate >> heavy >> summary
    critical >> summary
