"""What people see of the project inside the Airflow UI: the "Maintenance calendar" page."""
