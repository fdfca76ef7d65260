"""Waiting for a local time of day without holding a worker slot."""

from __future__ import annotations

from datetime import time

from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync


class WaitUntilLocalTime(DateTimeSensorAsync):
    """Defer until ``hour:minute`` in the policy's zone on the day of the run's logical date.

    Only scheduled runs wait: a manual run or a backfill goes straight on, so
    on-call never waits for the clock.
    The local time is resolved by the maintenance calendar's rules, so the wait is
    right on the days daylight saving time starts and ends.

    :param hour: the local hour to wait for.
    :param minute: the local minute.
    :param timezone: an IANA zone name, the policy's ``timezone``.
    """

    def __init__(self, *, hour: int, minute: int = 0, timezone: str, **kwargs) -> None:
        super().__init__(target_time="1970-01-01T00:00:00+00:00", **kwargs)
        self.at = time(hour, minute)
        self.timezone = timezone

    def execute(self, context) -> None:
        from zoneinfo import ZoneInfo

        from maintenance.calendar import local_instant
        from maintenance.clock import run_date

        logical = run_date(context)
        if not str(context["dag_run"].run_type).lower().endswith("scheduled"):
            self.log.info("Not a scheduled run: going on without waiting for %s", self.at)
            return
        from maintenance import clock

        tz = ZoneInfo(self.timezone)
        target = local_instant(logical.astimezone(tz).date(), self.at, tz)
        if clock.now() >= target:
            # Deferring for a moment already past makes the trigger fire at once, and on a busy
            # scheduler that race can mark the task up for retry: go on instead.
            self.log.info("%s %s (%s) has passed: going on", self.at, self.timezone, target.isoformat())
            return
        self.target_time = target.isoformat()
        self.log.info("Waiting until %s (%s %s)", self.target_time, self.at, self.timezone)
        super().execute(context)
