"""Monitoring: the weekly review of Prometheus's alerting rules."""
