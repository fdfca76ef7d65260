"""The Airflow plugin that adds the "Maintenance calendar" page (maintenance/ui/) to the Airflow
UI's navigation: the app on the API server at /maintenance-calendar, shown inside the UI at
/plugin/maintenance-calendar, behind Airflow's own login."""

from airflow.plugins_manager import AirflowPlugin
from maintenance.ui.app import app


class MaintenanceCalendar(AirflowPlugin):
    name = "maintenance_calendar"
    fastapi_apps = [{"app": app, "url_prefix": "/maintenance-calendar",
                     "name": "Maintenance calendar: windows, blackouts, the gate's outlook, the ledger, KPIs"}]
    external_views = [{"name": "Maintenance calendar", "href": "maintenance-calendar/", "destination": "nav",
                       "url_route": "maintenance-calendar", "icon": None}]
