"""RDS maintenance governed by the maintenance calendar.

Each RDS instance has a weekly preferred maintenance window (``ddd:hh24:mi-ddd:hh24:mi``, UTC)
in which AWS applies its pending maintenance. Its occurrences over the next weeks are checked
against the calendar; an instance whose window falls in a blackout or freeze is moved to the
planned window's weekday and time (UTC, as the next planned window falls). Pending maintenance
actions are opted in (``next-maintenance``) only in the planned window, so AWS applies them in
an RDS window that this calendar allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from maintenance.calendar import Period

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WeeklyWindow:
    start_day: int
    start: time
    end_day: int
    end: time

    @classmethod
    def parse(cls, text: str) -> WeeklyWindow:
        """``sun:07:00-sun:11:00``; anything else is refused, naming it."""
        try:
            first, second = text.strip().lower().split("-")
            d1, h1, m1 = first.split(":")
            d2, h2, m2 = second.split(":")
            return cls(DAYS.index(d1), time(int(h1), int(m1)), DAYS.index(d2), time(int(h2), int(m2)))
        except (ValueError, AttributeError):
            raise ValueError(f"PreferredMaintenanceWindow: not ddd:hh24:mi-ddd:hh24:mi: {text!r}") from None

    def text(self) -> str:
        return f"{DAYS[self.start_day]}:{self.start:%H:%M}-{DAYS[self.end_day]}:{self.end:%H:%M}"

    def occurrences(self, after: datetime, weeks: int) -> list[tuple[datetime, datetime]]:
        """The window's next ``weeks`` occurrences ending after ``after``, in UTC."""
        now = after.astimezone(UTC)
        monday = datetime.combine(now.date() - timedelta(days=now.weekday()), time(0), UTC)
        found = []
        for week in range(-1, weeks + 1):
            base = monday + timedelta(weeks=week)
            start = base + timedelta(days=self.start_day, hours=self.start.hour, minutes=self.start.minute)
            end = base + timedelta(days=self.end_day, hours=self.end.hour, minutes=self.end.minute)
            if end <= start:
                end += timedelta(weeks=1)
            if end > now:
                found.append((start, end))
        return found[:weeks]


def for_period(period: Period) -> str:
    """The weekly RDS window (UTC) that covers a planned window."""
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    return WeeklyWindow(start.weekday(), start.time().replace(second=0, microsecond=0), end.weekday(),
                        end.time().replace(second=0, microsecond=0)).text()


@dataclass
class InstanceWindow:
    instance: str
    current: str
    conflicts: list[str] = field(default_factory=list)
    proposed: str | None = None
    why: str = ""

    def as_dict(self) -> dict:
        return {"instance": self.instance, "current": self.current, "conflicts": self.conflicts,
                "proposed": self.proposed, "why": self.why}


def review(rds, calendar, now: datetime, weeks: int) -> list[InstanceWindow]:
    """Every instance's window against the calendar: the blackouts its next ``weeks`` occurrences
    fall in, and the window to move it to (None: it stays)."""
    tz = calendar.tz
    target = calendar.next_window(now)
    found = []
    for page in rds.get_paginator("describe_db_instances").paginate():
        for db in page["DBInstances"]:
            item = InstanceWindow(db["DBInstanceIdentifier"], db.get("PreferredMaintenanceWindow", ""))
            window = WeeklyWindow.parse(item.current)
            for start, end in window.occurrences(now, weeks):
                for blocker in calendar.blocking(Period("rds", item.instance, start, end)):
                    item.conflicts.append(f"{start.astimezone(tz):%Y-%m-%d %H:%M %Z} in {blocker.kind} {blocker.name}")
            if item.conflicts and target is None:
                item.why = "its window falls in blackouts and no planned window is left in 24 months to move it to"
            elif item.conflicts and for_period(target) != item.current:
                item.proposed = for_period(target)
                item.why = f"moved to the planned window's slot ({target.describe(tz)})"
            found.append(item)
    return found


def pending(rds) -> list[dict]:
    """Pending maintenance actions: resource ARN, action, description, opt-in status."""
    found = []
    for page in rds.get_paginator("describe_pending_maintenance_actions").paginate():
        for resource in page["PendingMaintenanceActions"]:
            for action in resource.get("PendingMaintenanceActionDetails", []):
                found.append({"arn": resource["ResourceIdentifier"], "action": action["Action"],
                              "description": action.get("Description", ""),
                              "opt_in": action.get("OptInStatus")})
    return found
