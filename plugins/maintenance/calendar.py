"""When maintenance may run: blackouts, freezes and the planned window.

Pure functions over the policy's models; no Airflow imports. Every period is a
half-open interval of aware instants ``[start, end)``:

* a blackout or freeze covers whole local days, both named days included: it
  starts at local midnight of its first day and ends at local midnight after
  its last day;
* the planned window starts at its local start time and ends at its local end
  time, the end excluded.

Local times are resolved in the policy's zone. A local time that does not exist
(the spring-forward hour) is read as the instant the clocks jump past it, so a
window starting at 02:00 that day starts at 03:00 daylight time; a local time
that occurs twice (the fall-back hour) means its first occurrence.
"""

from __future__ import annotations

import calendar as _cal
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from maintenance.policy.model import WEEKDAYS, Blackout, Freeze, PlannedWindow


@dataclass(frozen=True)
class Period:
    kind: str  # "blackout", "freeze" or "window"
    name: str
    start: datetime
    end: datetime
    reason: str = ""

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end

    def describe(self, tz: ZoneInfo) -> str:
        start, end = self.start.astimezone(tz), self.end.astimezone(tz)
        label = f"{self.kind} {self.name}" + (f" ({self.reason})" if self.reason else "")
        return f"{label}: {start:%Y-%m-%d %H:%M %Z} until {end:%Y-%m-%d %H:%M %Z}"


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The aware UTC instant of wall time ``at`` on ``day`` in ``tz`` (see module doc)."""
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first
    # ``naive`` lies in a forward gap. Read with the later offset (fold=1) it lands before
    # the jump, with the earlier offset (fold=0) after it: the jump is between the two.
    instant = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    while instant.astimezone(tz).replace(tzinfo=None) < naive:
        instant += timedelta(minutes=1)
    return instant


def nth_weekday(year: int, month: int, weekday: str, nth: int) -> date:
    """The ``nth`` (1-4, or -1 for last) ``weekday`` of a month."""
    index = WEEKDAYS.index(weekday)
    days = [d for d in _cal.Calendar().itermonthdates(year, month) if d.month == month and d.weekday() == index]
    return days[-1] if nth == -1 else days[nth - 1]


class MaintenanceCalendar:
    def __init__(self, tz: ZoneInfo, window: PlannedWindow, blackouts: list[Blackout],
                 freezes: list[Freeze] = ()):
        self.tz = tz
        self.window = window
        self.blackouts = list(blackouts)
        self.freezes = list(freezes)
        self._windows: dict[tuple[int, int], Period | None] = {}  # window_in, by month: pure, so kept

    @classmethod
    def from_policy(cls, policy) -> MaintenanceCalendar:
        return cls(policy.tz, policy.planned_window, policy.blackouts, policy.freezes)

    # -- periods --------------------------------------------------------------------
    def _days(self, first: date, last: date, kind: str, name: str, reason: str) -> Period:
        return Period(kind, name, local_instant(first, time(0), self.tz),
                      local_instant(last + timedelta(days=1), time(0), self.tz), reason)

    def _blackouts_starting_in(self, year: int) -> list[Period]:
        periods = []
        for b in self.blackouts:
            wraps = b.end.key() < b.start.key()
            first, last = b.start.in_year(year), b.end.in_year(year + 1 if wraps else year)
            periods.append(self._days(first, last, "blackout", b.name, b.reason))
        return periods

    def _freeze_periods(self) -> list[Period]:
        return [self._days(f.start, f.end, "freeze", f.name, f.reason) for f in self.freezes]

    def window_on(self, day: date) -> Period:
        return Period("window", f"{day:%Y-%m}", local_instant(day, self.window.start, self.tz),
                      local_instant(day, self.window.end, self.tz), "planned maintenance")

    def nominal_day(self, year: int, month: int) -> date:
        """The month's ``week_of_month``-th ``weekday``: where the window stands unless moved."""
        return nth_weekday(year, month, self.window.weekday, self.window.week_of_month)

    def window_in(self, year: int, month: int) -> Period | None:
        """The month's planned window, or None when the placement leaves it none (every
        candidate day is in a blackout or freeze)."""
        if (year, month) not in self._windows:
            self._windows[(year, month)] = self._place(year, month)
        return self._windows[(year, month)]

    def _place(self, year: int, month: int) -> Period | None:
        explicit = [d for d in self.window.dates if (d.year, d.month) == (year, month)]
        if explicit:
            return self.window_on(explicit[0])
        first = self.nominal_day(year, month)
        if self.window.placement == "fixed":
            return self.window_on(first)
        days = [first + timedelta(weeks=n) for n in range(5) if (first + timedelta(weeks=n)).month == month]
        return next((w for w in map(self.window_on, days) if not self.blocking(w)), None)

    def blocking(self, period: Period) -> list[Period]:
        """The blackouts and freezes that overlap ``period``."""
        year = period.start.astimezone(self.tz).year
        candidates = [p for y in (year - 1, year) for p in self._blackouts_starting_in(y)] + self._freeze_periods()
        return [p for p in candidates if p.start < period.end and period.start < p.end]

    def monthly_run_day(self, year: int, month: int) -> date:
        """The day the monthly DAG does the month's work: its window's day, or, in a month with
        no window, the nominal day (the reviews and the report run; window work waits)."""
        window = self.window_in(year, month)
        return window.start.astimezone(self.tz).date() if window else self.nominal_day(year, month)

    def months_without_window(self, instant: datetime, months: int) -> list[str]:
        """The next ``months`` months (from ``instant``'s) that have no usable window, as YYYY-MM."""
        local = instant.astimezone(self.tz)
        year, month, found = local.year, local.month, []
        for _ in range(months):
            if self.window_in(year, month) is None:
                found.append(f"{year}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return found

    def last_window(self, instant: datetime, *, months: int = 24) -> Period | None:
        """The latest window that ended at or before ``instant`` (None: none in ``months``)."""
        local = instant.astimezone(self.tz)
        year, month = local.year, local.month
        for _ in range(months + 1):
            period = self.window_in(year, month)
            if period is not None and period.end <= instant:
                return period
            year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        return None

    def periods_between(self, start: datetime, end: datetime) -> list[Period]:
        """Every blackout, freeze and planned window overlapping ``[start, end)``, in order."""
        first, last = start.astimezone(self.tz), end.astimezone(self.tz)
        found = [p for y in range(first.year - 1, last.year + 1) for p in self._blackouts_starting_in(y)]
        found += self._freeze_periods()
        year, month = first.year, first.month
        while (year, month) <= (last.year, last.month):
            window = self.window_in(year, month)
            found += [window] if window else []
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return sorted({p for p in found if p.start < end and start < p.end}, key=lambda p: (p.start, p.kind))

    def overdue(self, instant: datetime, max_wait_days: int) -> tuple[Period | None, int | None, bool]:
        """Window-only work's wait: the last window that ended, the days since it, and whether
        that is longer than ``max_wait_days`` (never while a window is open)."""
        last = self.last_window(instant)
        waited = (instant - last.end).days if last else None
        late = self.window_at(instant) is None and (waited is None or waited > max_wait_days)
        return last, waited, late

    # -- questions ------------------------------------------------------------------
    def blackouts_at(self, instant: datetime) -> list[Period]:
        """Every blackout or freeze containing ``instant`` (usually none or one)."""
        year = instant.astimezone(self.tz).year
        candidates = self._blackouts_starting_in(year - 1) + self._blackouts_starting_in(year)
        return [p for p in candidates + self._freeze_periods() if p.contains(instant)]

    def window_at(self, instant: datetime) -> Period | None:
        local = instant.astimezone(self.tz)
        period = self.window_in(local.year, local.month)
        return period if period is not None and period.contains(instant) else None

    def next_window(self, instant: datetime, *, months: int = 24) -> Period | None:
        """The window containing ``instant``, or else the next one to start; None when the
        placement leaves no window in the next ``months`` months."""
        local = instant.astimezone(self.tz)
        year, month = local.year, local.month
        for _ in range(months + 1):
            period = self.window_in(year, month)
            if period is not None and period.end > instant:
                return period
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return None

    def next_blackout(self, instant: datetime) -> Period | None:
        """The blackout or freeze containing ``instant``, or else the next one to start."""
        year = instant.astimezone(self.tz).year
        candidates = [p for y in (year - 1, year, year + 1) for p in self._blackouts_starting_in(y)]
        upcoming = [p for p in candidates + self._freeze_periods() if p.end > instant]
        return min(upcoming, key=lambda p: (p.start, p.end), default=None)
