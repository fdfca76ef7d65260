"""What the "Maintenance calendar" page shows, gathered once per request. Read-only.

The next ``days`` days: blackouts, freezes and planned windows (each window's notice and the
Change Advisory Board's decision, from the ledger); every maintenance DAG's scheduled runs and
what the gate would decide for them (the same ``find_blockers`` the gate runs, with the load
and firing alerts left to the moment itself); overdue work; the last 30 days of the ledger's
actions; and the KPIs, over the last 30 days and month by month.

Plain functions over the policy, a ledger connection and the DAGs' run times: no Airflow here
(``maintenance.ui.app`` reads the run times from Airflow's own tables).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from psycopg import sql

from maintenance.calendar import MaintenanceCalendar, Period
from maintenance.gate.blockers import Facts, TaskProfile, find_blockers

# The monthly DAG is due on every candidate day of the window and works only on the month's
# run day (dagkit.months_run_day): the page lists only the runs that do the month's work.
MONTHLY_DAG = "maintenance_monthly"
ACTIONS_SHOWN = 200
KPI_MONTHS = 6


@dataclass
class WindowRow:
    period: Period
    notice: str
    approval: str
    cleared: bool | None  # may its scheduled disruptive work run? None: not decided yet


@dataclass
class RunRow:
    dag_id: str
    at: datetime
    paused: bool
    routine: str  # what the gate decides for zero-downtime work
    disruptive: str  # ... and for work that needs the window


@dataclass
class CalendarPage:
    now: datetime
    start: datetime
    end: datetime
    periods: list[Period]
    windows: list[WindowRow]
    months_without_window: list[str]
    runs: list[RunRow]
    overdue: list[str]
    ledger_error: str | None = None
    actions: list[dict] = field(default_factory=list)
    actions_per_day: list[tuple] = field(default_factory=list)  # (day, applied, failed or rolled back, other)
    kpis: object | None = None
    kpi_months: list[tuple[str, object]] = field(default_factory=list)


def window_state(policy, window: Period, sent: dict | None, approval: dict | None,
                 now: datetime) -> tuple[str, str, bool | None]:
    """A window's notice and approval, as a person reads them, and whether its scheduled
    disruptive work may run (None: not decided yet)."""
    from maintenance.change.notice import not_cleared

    tz, rules = policy.tz, policy.planned_window
    due = window.start - timedelta(days=rules.notice_days)
    if sent:
        notice = f"sent {sent['sent_at'].astimezone(tz):%Y-%m-%d %H:%M %Z} to {sent['channel']}"
    elif now < due:
        notice = f"due {due.astimezone(tz):%Y-%m-%d} ({rules.notice_days} days ahead)"
    else:
        notice = f"not sent (was due {due.astimezone(tz):%Y-%m-%d})"
    if not rules.approval:
        shown = "not required by the policy"
    elif approval:
        by = f" by {approval['decided_by']}" if approval["decided_by"] else ""
        at = approval["decided_at"].astimezone(tz)
        shown = f"{approval['decision'].replace('_', ' ')}{by}, {at:%Y-%m-%d %H:%M %Z}"
    elif sent:
        shown = "waiting for the Change Advisory Board (maintenance_window_approval, Required actions)"
    else:
        shown = "asked when the notice goes out"
    standing = not_cleared(policy, window, sent, approval)
    undecided = standing is not None and window.end > now and (
        (sent is None and now < due) or (sent is not None and rules.approval and approval is None))
    return notice, shown, None if undecided else standing is None


def gate_outlook(policy, calendar: MaintenanceCalendar, at: datetime, windows: dict) -> tuple[str, str]:
    """What the gate would decide for a run at ``at``: for routine (zero-downtime) work and for
    disruptive work. Load and firing alerts are measured when the run comes."""
    from maintenance.gate.blockers import decide

    rules = {"max_affected_users": policy.decision.max_affected_users_outside_window,
             "active_users_threshold": policy.decision.load.active_users_threshold}
    facts = Facts(now=at)
    routine = decide(find_blockers(TaskProfile(), facts, calendar, **rules))
    window = calendar.window_at(at)
    row = windows.get(window.start) if window else None
    disruptive = decide(find_blockers(
        TaskProfile(zero_downtime=False, affected_users=policy.decision.max_affected_users_outside_window + 1),
        facts, calendar, **rules))

    def said(decision, pending: str = "") -> str:
        if decision.outcome == "proceed":
            return "runs" + pending + " (load and alerts checked then)"
        return "skipped: " + "; ".join(waits_for(b, at) if b.kind == "outside_window" else b.reason
                                        for b in decision.blockers)

    def waits_for(blocker, at: datetime) -> str:
        upcoming = calendar.next_window(at)
        return (f"waits for the window of {upcoming.start.astimezone(policy.tz):%Y-%m-%d %H:%M %Z}" if upcoming
                else blocker.reason)

    if row is not None and row.cleared is False:  # the window's notice or approval stops it (the gate's notice)
        return said(routine), f"skipped: notice {row.notice}; approval {row.approval}"
    pending = " once the notice is out and the board approves" if row is not None and row.cleared is None else ""
    return said(routine), said(disruptive, pending)


def scheduled_runs(policy, calendar: MaintenanceCalendar, schedules: dict[str, list[datetime]],
                   paused: dict[str, bool], windows: dict) -> list[RunRow]:
    tz, rows = policy.tz, []
    for dag_id, times in sorted(schedules.items()):
        for at in times:
            local = at.astimezone(tz)
            if dag_id == MONTHLY_DAG and local.date() != calendar.monthly_run_day(local.year, local.month):
                continue
            routine, disruptive = gate_outlook(policy, calendar, at, windows)
            rows.append(RunRow(dag_id, at, paused.get(dag_id, False), routine, disruptive))
    return sorted(rows, key=lambda r: (r.at, r.dag_id))


def collect(policy, conn, *, now: datetime, schedules: dict[str, list[datetime]], paused: dict[str, bool],
            days: int = 90, ledger_error: str | None = None) -> CalendarPage:
    """The page's data; ``conn``: the ledger (None when it cannot be reached: ``ledger_error``
    says why, and the calendar is shown without the ledger's parts)."""
    from maintenance.ledger import incident_log, notices

    calendar, schema = MaintenanceCalendar.from_policy(policy), policy.ledger.schema_name
    end = now + timedelta(days=days)
    periods = calendar.periods_between(now, end)
    windows = {}
    for period in (p for p in periods if p.kind == "window"):
        if conn is None:
            windows[period.start] = WindowRow(period, "unknown: the ledger cannot be read", "unknown", None)
            continue
        sent = notices.sent_for(conn, schema, period.start)
        approval = notices.approval_for(conn, schema, period.start)
        windows[period.start] = WindowRow(period, *window_state(policy, period, sent, approval, now))
    # As far ahead as the daily calendar review looks (6 months), or the page's days if longer.
    months = calendar.months_without_window(now, max(6, days // 30 + 2))
    page = CalendarPage(now=now, start=now, end=end, periods=[p for p in periods if p.kind != "window"],
                        windows=list(windows.values()), months_without_window=months,
                        runs=scheduled_runs(policy, calendar, schedules, paused, windows), overdue=[],
                        ledger_error=ledger_error)
    last, waited, late = calendar.overdue(now, policy.planned_window.max_wait_days)
    if late:
        page.overdue.append("Window-only work (de-bloat, node reboots, series deletion) has had no planned window "
                            + (f"for {waited} days" if last else "in two years")
                            + f", more than planned_window.max_wait_days ({policy.planned_window.max_wait_days}).")
    page.overdue += [f"No planned window in {m}: window-only work waits (set planned_window.dates)." for m in months]
    if conn is None:
        return page
    for item in incident_log.action_items(conn, schema, open_only=True):
        if item["due"] < now.astimezone(policy.tz).date():
            page.overdue.append(f"Post-mortem action item #{item['id']} of incident #{item['incident_id']} "
                                f"({item['owner']}): {item['title']}, due {item['due']:%Y-%m-%d}.")
    page.actions, page.actions_per_day = recent_actions(conn, schema, now, policy.tz)
    page.kpis, page.kpi_months = kpis_over(conn, schema, now, policy)
    return page


def recent_actions(conn, schema: str, now: datetime, tz) -> tuple[list[dict], list[tuple]]:
    """The last 30 days of the ledger's actions: the latest ``ACTIONS_SHOWN``, and per local day
    how many were applied, failed or rolled back, and anything else (planned, skipped, dry runs)."""
    s, since = sql.Identifier(schema), now - timedelta(days=30)
    latest = conn.execute(sql.SQL("""
        SELECT started_at, dag_id, task_id, system, target, action, outcome, rows_affected, duration_ms,
               dry_run, forced_reason, error
        FROM {}.actions WHERE started_at >= %s AND started_at <= %s
        ORDER BY started_at DESC LIMIT %s""").format(s), (since, now, ACTIONS_SHOWN)).fetchall()
    names = ("started_at", "dag_id", "task_id", "system", "target", "action", "outcome", "rows_affected",
             "duration_ms", "dry_run", "forced_reason", "error")
    per_day = conn.execute(sql.SQL("""
        SELECT (started_at AT TIME ZONE %s)::date AS day,
               count(*) FILTER (WHERE outcome = 'applied' AND NOT dry_run),
               count(*) FILTER (WHERE outcome IN ('failed', 'rolled_back') AND NOT dry_run),
               count(*) FILTER (WHERE dry_run OR outcome NOT IN ('applied', 'failed', 'rolled_back'))
        FROM {}.actions WHERE started_at >= %s AND started_at <= %s
        GROUP BY 1 ORDER BY 1""").format(s), (str(tz), since, now)).fetchall()
    return [dict(zip(names, row, strict=True)) for row in latest], per_day


def kpis_over(conn, schema: str, now: datetime, policy) -> tuple[object, list[tuple[str, object]]]:
    """The KPIs of the last 30 days, and of each of the last ``KPI_MONTHS`` calendar months (the
    current one up to now)."""
    from datetime import date, time

    from maintenance.calendar import local_instant
    from maintenance.ledger import kpis

    targets, tz = policy.reports.kpi_targets, policy.tz
    recent = kpis.compute(conn, schema, now - timedelta(days=30), now, now=now, targets=targets)
    local, months = now.astimezone(tz), []
    year, month = local.year, local.month
    for _ in range(KPI_MONTHS):
        after = (year + 1, 1) if month == 12 else (year, month + 1)
        start, end = local_instant(date(year, month, 1), time(0), tz), local_instant(date(*after, 1), time(0), tz)
        months.append((f"{year}-{month:02d}", kpis.compute(conn, schema, start, min(end, now), now=now,
                                                            targets=targets)))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return recent, months[::-1]
