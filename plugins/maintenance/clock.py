"""The one place that reads the wall clock, so tests can move time."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def plain(value: datetime) -> datetime:
    """A stdlib aware datetime from Airflow's context values (pendulum DateTime in Airflow 3)."""
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def run_date(context) -> datetime:
    """The date a run works for: its logical date, or, for runs triggered without one (Airflow 3
    UI and API triggers), the time it was due to run."""
    value = context.get("logical_date") or context["dag_run"].run_after
    return plain(value)
