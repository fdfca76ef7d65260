"""Incidents: recorded from the Airflow UI into the ledger, which feeds the KPIs."""
