"""Waiting for a local time of day: right across DST, and never for manual runs."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import TaskDeferred
from maintenance import clock
from maintenance.timing import WaitUntilLocalTime


def deferred_until(run_type: str, logical: datetime) -> datetime:
    sensor = WaitUntilLocalTime(task_id="at_0300", hour=3, timezone="America/New_York")
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({"logical_date": logical, "dag_run": SimpleNamespace(run_type=run_type)})
    return info.value.trigger.moment


@pytest.mark.parametrize(("logical", "expected"), [
    (datetime(2026, 11, 27, 5, 0, tzinfo=UTC), datetime(2026, 11, 27, 8, 0, tzinfo=UTC)),  # EST
    (datetime(2027, 3, 14, 5, 0, tzinfo=UTC), datetime(2027, 3, 14, 7, 0, tzinfo=UTC)),    # spring forward
    (datetime(2026, 11, 1, 4, 0, tzinfo=UTC), datetime(2026, 11, 1, 8, 0, tzinfo=UTC)),    # fall back
    (datetime(2026, 7, 1, 4, 0, tzinfo=UTC), datetime(2026, 7, 1, 7, 0, tzinfo=UTC)),      # EDT
])
def test_scheduled_runs_wait_for_local_three_am(logical, expected, monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: logical)  # the run starts at its logical date
    assert deferred_until("scheduled", logical) == expected


def test_a_scheduled_run_past_the_hour_goes_on_without_deferring(monkeypatch):
    """Deferring for a past moment races the scheduler (the task can be marked up for retry)."""
    logical = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: datetime(2026, 11, 27, 8, 5, tzinfo=UTC))  # 03:05 EST
    sensor = WaitUntilLocalTime(task_id="at_0300", hour=3, timezone="America/New_York")
    assert sensor.execute({"logical_date": logical, "dag_run": SimpleNamespace(run_type="scheduled")}) is None


@pytest.mark.parametrize("run_type", ["manual", "backfill"])
def test_manual_and_backfill_runs_do_not_wait(run_type):
    sensor = WaitUntilLocalTime(task_id="at_0300", hour=3, timezone="America/New_York")
    context = {"logical_date": datetime(2026, 11, 27, 15, 42, tzinfo=UTC),
               "dag_run": SimpleNamespace(run_type=run_type)}
    assert sensor.execute(context) is None  # returned: no TaskDeferred raised
