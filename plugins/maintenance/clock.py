"""The one place that reads the wall clock, so tests can move time."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def plain(value: datetime) -> datetime:
    """A stdlib aware datetime from Airflow's context values (pendulum DateTime in Airflow 3)."""
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)
