"""Why maintenance may not run now: one small object per reason.

``decide`` applies the procedures' decision rules (section 1.2) to a task's
profile and the facts of the moment, and returns every blocker that applies.
A blocker either *skips* the work for this run (blackout, freeze, outside the
window) or makes it *wait* (load). Forcing, with a reason, lifts the blockers
marked ``forceable``; the manual freeze switch and load are never forced: the
switch is lifted by flipping it back, and load protects the platform itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from maintenance.calendar import MaintenanceCalendar
from maintenance.probes import too_many_users

Action = Literal["skip", "wait"]


@dataclass(frozen=True)
class TaskProfile:
    """What the gate needs to know about the work behind it."""

    critical: bool = False
    zero_downtime: bool = True
    affected_users: int = 0


@dataclass(frozen=True)
class Blocker:
    kind: str
    reason: str
    action: Action
    forceable: bool


@dataclass(frozen=True)
class Facts:
    """What was observed when the gate looked."""

    now: datetime
    active_users: int | None = None
    manual_freeze: str | None = None
    # A scheduled run's time and when it was queued; None for manual runs and backfills,
    # which someone asked for.
    scheduled_for: datetime | None = None
    queued_at: datetime | None = None
    # The policy's selected alerts firing now (disruptive work only); None: not asked. A reason
    # instead of a list: Alertmanager could not be asked, so nobody can say all is well.
    firing_alerts: tuple[str, ...] | None = None
    alerts_unknown: str | None = None
    # A scheduled run's disruptive work in the window: why the window's notice does not let it
    # run (not sent, sent late, or the ledger could not say); None: it does, or not asked.
    notice_missing: str | None = None


@dataclass
class Decision:
    outcome: Literal["proceed", "skip", "wait"]
    blockers: list[Blocker] = field(default_factory=list)
    lifted: list[Blocker] = field(default_factory=list)
    forced_reason: str | None = None

    @property
    def reasons(self) -> list[str]:
        return [b.reason for b in self.blockers]

    def as_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "blockers": [asdict(b) for b in self.blockers],
            "lifted_by_force": [asdict(b) for b in self.lifted],
            "forced_reason": self.forced_reason,
        }


def find_blockers(profile: TaskProfile, facts: Facts, calendar: MaintenanceCalendar, *,
                  max_affected_users: int, active_users_threshold: int,
                  catch_up_after: timedelta = timedelta(hours=1)) -> list[Blocker]:
    if profile.critical:
        return []  # the procedures: critical tasks run in blackouts and under load
    tz = calendar.tz
    found = []
    if facts.scheduled_for and facts.queued_at and facts.queued_at - facts.scheduled_for > catch_up_after:
        late = facts.queued_at - facts.scheduled_for
        found.append(Blocker(
            "catch_up", f"catch-up run: scheduled for {facts.scheduled_for.astimezone(tz):%Y-%m-%d %H:%M %Z}, "
                        f"started {_hours(late)} late (the DAG was unpaused or the scheduler was down); its work "
                        "is not applied unasked: trigger a run to do it now", "skip", forceable=False))
    found += [
        Blocker(period.kind, f"in {period.describe(tz)}", "skip", forceable=True)
        for period in calendar.blackouts_at(facts.now)
    ]
    if facts.manual_freeze:
        found.append(Blocker("manual_freeze", f"manual freeze switch is on: {facts.manual_freeze}",
                             "skip", forceable=False))
    if not profile.zero_downtime and profile.affected_users > max_affected_users:
        if calendar.window_at(facts.now) is None:
            upcoming = calendar.next_window(facts.now)
            waits = (f"waits for the planned {upcoming.describe(tz)}" if upcoming else
                     "waits, but no planned window is left in the next 24 months (blackouts and freezes cover every "
                     "candidate day): set planned_window.dates, or run it as emergency maintenance")
            found.append(Blocker(
                "outside_window",
                f"not zero-downtime and affects {profile.affected_users} users (> {max_affected_users}): {waits}",
                "skip", forceable=True))
    if facts.notice_missing:
        found.append(Blocker("notice", facts.notice_missing, "skip", forceable=True))
    if not profile.zero_downtime and facts.firing_alerts:
        shown = ", ".join(facts.firing_alerts[:5]) + (f" and {len(facts.firing_alerts) - 5} more"
                                                      if len(facts.firing_alerts) > 5 else "")
        found.append(Blocker("alerts", f"alerts firing: {shown}; disruptive work waits for them to resolve",
                             "wait", forceable=False))
    if not profile.zero_downtime and facts.alerts_unknown:
        found.append(Blocker("alerts", f"cannot tell whether alerts are firing: {facts.alerts_unknown}",
                             "wait", forceable=False))
    busy = None if facts.active_users is None else too_many_users(facts.active_users, active_users_threshold)
    if busy:
        found.append(Blocker("load", busy, "wait", forceable=False))
    return found


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def decide(blockers: list[Blocker], force_reason: str | None = None) -> Decision:
    forced = (force_reason or "").strip() or None
    lifted = [b for b in blockers if forced and b.forceable]
    standing = [b for b in blockers if b not in lifted]
    if any(b.action == "skip" for b in standing):
        outcome = "skip"
    elif standing:
        outcome = "wait"
    else:
        outcome = "proceed"
    return Decision(outcome, standing, lifted, forced)
