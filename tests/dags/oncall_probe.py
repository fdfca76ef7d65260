"""A DAG for tests only: a critical task that fails, a routine one that succeeds."""

from datetime import datetime

from airflow.sdk import DAG
from maintenance import dagkit
from maintenance.operator import MaintenanceOperator


class _Broken(MaintenanceOperator):
    def run(self, run):
        with run.ledger.action("backup", "s3://backups/latest.dump", "pg_dump"):
            raise RuntimeError("sha256 mismatch: manifest 9f2c..., object 11ab...")


class _Fine(MaintenanceOperator):
    def run(self, run):
        with run.ledger.action("postgres", "public.t", "analyze") as act:
            act.rows_affected = 0 if run.dry_run else 1
        return {"analyzed": 1}

    def describe(self, summary):
        return f"{summary['analyzed']} table analyzed"


with DAG(
    dag_id="oncall_probe",
    schedule=dagkit.timetable("0 0 * * *"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=dagkit.default_args(retries=0),
    params=dagkit.trigger_form(destructive=False),
    tags=["test"],
) as dag:
    _Broken(task_id="verify_backup", critical=True) >> dagkit.run_summary()
    _Fine(task_id="routine") >> dag.get_task("run_summary")
