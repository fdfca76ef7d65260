"""The calendar and the decision rules: planned window, blackouts, freezes, load."""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from maintenance.policy.base import WEEKDAYS, MonthDay, TimeOfDay, _Strict


class PlannedWindow(_Strict):
    """The monthly planned maintenance window (the procedures: Sunday 02:00-06:00).

    ``placement``: ``first_clear`` places each month's window on the ``week_of_month``-th
    ``weekday``, or the first such weekday after it in the month whose window lies outside every
    blackout and freeze (a month with none has no window, reported ahead of time); ``fixed``
    keeps it on the ``week_of_month``-th, blackout or not. ``dates``: explicit windows, each the
    window of its month whatever the placement says."""

    weekday: Literal[WEEKDAYS] = "sunday"  # type: ignore[valid-type]
    week_of_month: int = Field(1, description="1-4 for the n-th such weekday, -1 for the last")
    start: TimeOfDay = time(2, 0)
    end: TimeOfDay = time(6, 0)
    notice_days: int = Field(7, ge=0)
    placement: Literal["first_clear", "fixed"] = "first_clear"
    dates: list[date] = Field([], description="explicit window days, at most one per month")
    max_wait_days: int = Field(45, ge=1, description="window-only work that has had no usable window for longer "
                                                     "is overdue: a finding that pages on-call")
    approval: bool = Field(True, description="a scheduled window's disruptive work waits for the Change Advisory "
                                             "Board's approval, asked in the Airflow UI when the notice goes out")
    approvers: list[str] = Field([], description="Airflow users (ids) who may approve; empty: any user Airflow lets "
                                                 "act on the approval DAG")

    @field_validator("dates")
    @classmethod
    def _one_per_month(cls, value: list[date]) -> list[date]:
        months = [(d.year, d.month) for d in value]
        twice = sorted({f"{y}-{m:02d}" for y, m in months if months.count((y, m)) > 1})
        if twice:
            raise ValueError(f"at most one window per month, got two or more in {', '.join(twice)}")
        return sorted(value)

    @field_validator("week_of_month")
    @classmethod
    def _week(cls, value: int) -> int:
        if value not in (1, 2, 3, 4, -1):
            raise ValueError(f"must be 1, 2, 3, 4 or -1 (the last), got {value}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> PlannedWindow:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end:%H:%M}) must be after start ({self.start:%H:%M})")
        return self

    @property
    def cron(self) -> str:
        """Cron for the window's start, for a CronTriggerTimetable (``#n`` = n-th weekday). A
        window placed around blackouts, or on explicit dates, may fall on any day: the monthly DAG
        is then due every ``weekday`` (and daily with explicit dates) at the window's start, and
        its runs on the other days end at once (maintenance.dagkit.monthly_day)."""
        if self.dates:
            return f"{self.start.minute} {self.start.hour} * * *"
        dow = (WEEKDAYS.index(self.weekday) + 1) % 7
        if self.placement == "first_clear":
            return f"{self.start.minute} {self.start.hour} * * {dow}"
        nth = "L" if self.week_of_month == -1 else f"#{self.week_of_month}"
        return f"{self.start.minute} {self.start.hour} * * {dow}{nth}"


class Blackout(_Strict):
    """A period that recurs every year, inclusive of both days; one that runs over the new year
    says so (``wraps_year``), so a slip such as 09-15..08-15 is not read as ten months."""

    name: str = Field(min_length=1)
    start: MonthDay
    end: MonthDay
    reason: str = ""
    wraps_year: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Blackout:
        backwards = self.end.key() < self.start.key()
        if backwards and not self.wraps_year:
            raise ValueError(f"end ({self.end}) is before start ({self.start}): if the blackout runs over the new "
                             "year, say so with wraps_year: true")
        if self.wraps_year and not backwards:
            raise ValueError(f"wraps_year is set but {self.start}..{self.end} does not cross the new year")
        return self

    def days(self) -> set[tuple[int, int]]:
        """Its days, as (month, day), in a leap year."""
        day, found = date(2024, 1, 1), set()
        while day.year == 2024:
            key = (day.month, day.day)
            inside = self.start.key() <= key <= self.end.key() if not self.wraps_year else (
                key >= self.start.key() or key <= self.end.key())
            if inside:
                found.add(key)
            day += timedelta(days=1)
        return found


class Freeze(_Strict):
    """A one-off freeze between two dates, inclusive of both."""

    name: str = Field(min_length=1)
    start: date
    end: date
    reason: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Freeze:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self


class Emergency(_Strict):
    """Emergency maintenance (procedures 1.1): a run forced past a blackout, a freeze, the window
    or its notice goes ahead only once the on-call lead and a director have both approved it in
    the Airflow UI (``maintenance_emergency_approval``, asked by the run itself). Two different
    people: one person's two answers are one approval."""

    approval: bool = Field(True, description="forced work waits for the two approvals; false: the typed reason "
                                             "alone forces (the reason is still recorded)")
    oncall_leads: list[str] = Field([], description="Airflow users (ids) who approve as the on-call lead; empty: "
                                                    "any user Airflow lets act on the approval DAG")
    directors: list[str] = Field([], description="Airflow users (ids) who approve as a director; empty: any user "
                                                 "Airflow lets act on the approval DAG")
    response_timeout_minutes: float = Field(240, gt=0, description="no answer by then: not approved, the forced "
                                                                   "work is skipped")
    recheck_seconds: float = Field(30, ge=10, description="how often a waiting gate looks for the answers (at "
                                                         "least 10 s: a sensor rescheduled sooner can race the "
                                                         "scheduler's handling of its last look)")


class LoadProbe(_Strict):
    """How the number of active users is measured: one SQL query returning one number."""

    conn_id: str = "platform_db"
    sql: str = Field(min_length=1)


class LoadRule(_Strict):
    active_users_threshold: int = Field(50_000, ge=0)
    recheck_after_minutes: float = Field(120, gt=0)
    give_up_after_minutes: float = Field(480, gt=0)
    probe: LoadProbe

    @property
    def recheck_after(self) -> timedelta:
        return timedelta(minutes=self.recheck_after_minutes)

    @property
    def give_up_after(self) -> timedelta:
        return timedelta(minutes=self.give_up_after_minutes)


class Decision(_Strict):
    """The procedures' decision rules (section 1.2)."""

    max_affected_users_outside_window: int = Field(1_000, ge=0)
    load: LoadRule
    freeze_variable: str = Field("maintenance_freeze", min_length=1)
    # A scheduled run queued this long after its time is a catch-up (the DAG was unpaused, or
    # the scheduler was down): its non-critical work is skipped, not applied unannounced.
    catch_up_after_minutes: float = Field(60, gt=0)
