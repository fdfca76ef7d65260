"""The maintenance ledger: every run, action, finding, metric and incident, in PostgreSQL."""
