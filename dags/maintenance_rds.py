"""RDS maintenance follows the maintenance calendar (procedures 1.1, 5.2), every day at the
planned window's start time (02:00).

**rds_windows** checks every RDS instance's weekly preferred maintenance window against the
calendar (the next `rds_maintenance.look_ahead_weeks` weeks) and moves those that fall in a
blackout or freeze to the planned window's slot. Behind the window gate (the window, its notice
and the Change Advisory Board's approval), **pending_maintenance** opts the instances' pending
maintenance actions in for the next maintenance, so AWS applies them when this calendar allows.
Off unless `rds_maintenance.enabled`. Each run is an Airflow task; its summary goes to Slack."""

from airflow.sdk import chain
from maintenance import dagkit
from maintenance.aws.operators import RdsPendingMaintenanceOperator, RdsWindowOperator

window = dagkit.policy().planned_window

with dagkit.maintenance_dag(
    "maintenance_rds",
    cron=f"{window.start.minute} {window.start.hour} * * *",
    title="RDS maintenance windows",
    doc=__doc__,
    destructive=False,
    tags=["aws", "change"],
) as dag:
    summary = dagkit.run_summary()
    # Moving a window out of a blackout protects the blackout: not gated.
    RdsWindowOperator(task_id="rds_windows") >> summary
    gate_window = dagkit.gate("gate_window", zero_downtime=False, affected_users=1_000_000)
    chain(gate_window, RdsPendingMaintenanceOperator(task_id="pending_maintenance"), summary)
