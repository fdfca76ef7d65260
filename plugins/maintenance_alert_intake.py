"""The Airflow plugin that mounts the alert intake (maintenance/incidents/intake.py) on the API
server at /maintenance: Alertmanager's webhook posts to <airflow>/maintenance/alertmanager."""

from airflow.plugins_manager import AirflowPlugin
from maintenance.incidents.intake import app


class MaintenanceAlertIntake(AirflowPlugin):
    name = "maintenance_alert_intake"
    fastapi_apps = [{"app": app, "url_prefix": "/maintenance", "name": "Alertmanager webhook: alerts open incidents"}]
