"""What a report shows, read from the ledger for one period."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from psycopg import sql

from maintenance.clock import plain
from maintenance.ledger import kpis

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}

# The time series charted, as (system, metric name) pairs other capabilities record.
SERIES = {
    "bloat": ("postgres", "bloat_pct"),
    "archived_rows": ("archive", "rows_moved"),
    "restore_seconds": ("backup", "restore_seconds"),
    "redis_used_memory_mb": ("redis", "used_memory_mb"),
    "redis_hit_ratio": ("redis", "hit_ratio"),
}


@dataclass
class ReportData:
    kind: str
    start: datetime
    end: datetime
    kpis: kpis.KPIs
    actions_per_week: list[tuple[datetime, str, int]]
    series: dict[str, list[tuple[datetime, str, float]]]
    findings: list[dict]
    recommendations: list[str] = field(default_factory=list)
    incidents: list[dict] = field(default_factory=list)
    action_items: list[dict] = field(default_factory=list)
    approvals: list[dict] = field(default_factory=list)  # window and emergency approvals decided in the period


def period_for(kind: str, logical_date: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The period through the run: weekly, the seven days up to the run's date and time; monthly,
    the month up to it (the same day and time a calendar month before). A run triggered now
    reports what happened up to now, a re-run or backfill of a date rewrites that date's report."""
    end = plain(logical_date).astimezone(tz)
    if kind == "weekly":
        return (end.replace(tzinfo=None) - timedelta(days=7)).replace(tzinfo=tz), end
    if kind == "monthly":
        year, month = (end.year, end.month - 1) if end.month > 1 else (end.year - 1, 12)
        day = min(end.day, calendar.monthrange(year, month)[1])
        return end.replace(tzinfo=None).replace(year=year, month=month, day=day).replace(tzinfo=tz), end
    raise ValueError(f"kind: 'weekly' or 'monthly', got {kind!r}")


def collect(conn, schema: str, kind: str, start: datetime, end: datetime, *, now: datetime,
            targets, probe_down: list[tuple[datetime, datetime]] | None = None) -> ReportData:
    """The report's data; ``probe_down``: the availability series' down spans (None: no series)."""
    from maintenance.ledger import incident_log
    s = sql.Identifier(schema)
    actions = conn.execute(sql.SQL("""
        SELECT date_trunc('week', started_at) AS week, system, count(*)
        FROM {}.actions WHERE started_at >= %s AND started_at < %s AND NOT dry_run
        GROUP BY 1, 2 ORDER BY 1, 2""").format(s), (start - timedelta(days=56), end)).fetchall()
    series = {}
    for key, (system, name) in SERIES.items():
        series[key] = conn.execute(sql.SQL("""
            SELECT date_trunc('hour', recorded_at), target, value FROM {}.metrics
            WHERE system = %s AND name = %s AND recorded_at >= %s AND recorded_at < %s
            ORDER BY recorded_at""").format(s), (system, name, start - timedelta(days=84), end)).fetchall()
    findings = [
        {"check": c, "target": t, "severity": sev, "message": m, "recorded_at": at}
        for c, t, sev, m, at in conn.execute(sql.SQL("""
            SELECT DISTINCT ON (check_name, target) check_name, target, severity, message, recorded_at
            FROM {}.findings WHERE recorded_at >= %s AND recorded_at < %s AND resolved_at IS NULL
            ORDER BY check_name, target, recorded_at DESC""").format(s), (start, end)).fetchall()
    ]
    findings.sort(key=lambda f: (SEVERITY_ORDER.get(f["severity"], 9), f["check"], f["target"]))
    data = ReportData(kind, start, end, kpis.compute(conn, schema, start, end, now=now, targets=targets,
                                                     probe_down=probe_down), actions, series, findings)
    data.incidents = incident_log.incidents_in(conn, schema, start, end, now=now)
    data.action_items = [i | {"overdue": i["due"] < end.date()}
                         for i in incident_log.action_items(conn, schema, open_only=True)]
    data.approvals = approvals_in(conn, schema, start, end)
    data.recommendations = recommend(data)
    return data


def approvals_in(conn, schema: str, start: datetime, end: datetime) -> list[dict]:
    """Change approvals decided in the period, oldest first: each planned window's (the Change
    Advisory Board) and each forced run's two (emergency maintenance)."""
    from maintenance.ledger import notices

    windows = conn.execute(sql.SQL("""
        SELECT window_start, decision, decided_by, decided_at FROM {}.window_approvals
        WHERE decided_at >= %s AND decided_at < %s""").format(sql.Identifier(schema)), (start, end)).fetchall()
    found = [{"what": f"planned window {ws:%Y-%m-%d %H:%M} UTC", "role": "Change Advisory Board", "decision": d,
              "decided_by": by, "decided_at": at, "reason": ""} for ws, d, by, at in windows]
    found += [{"what": f"{e['dag_id']} {e['run_id']}", "role": e["role"].replace("_", " "), "decision": e["decision"],
               "decided_by": e["decided_by"], "decided_at": e["decided_at"], "reason": e["reason"]}
              for e in notices.emergencies_in(conn, schema, start, end)]
    return [a | {"decided": f"{a['decided_at'].astimezone(UTC):%Y-%m-%d %H:%M} UTC"}
            for a in sorted(found, key=lambda a: a["decided_at"])]


def recommend(data: ReportData) -> list[str]:
    """The procedures' recommendations: missed KPI targets and open findings, most urgent first."""
    urgent, later = [], []
    for name, check in data.kpis.checks.items():
        if not check["met"]:
            value = check["value"]
            urgent.append(f"KPI {name.replace('_', ' ')} is {value:.2f} against a target of {check['target']}: "
                          "review the period's incidents and the maintenance that preceded them.")
    for finding in data.findings:
        line = f"[{finding['severity']}] {finding['check']} on {finding['target']}: {finding['message']}"
        (urgent if finding["severity"] == "critical" else later).append(line)
    overdue = [i for i in data.action_items if i["overdue"]]
    if overdue:
        later.append(f"{len(overdue)} post-mortem action item(s) overdue: "
                     + "; ".join(f"#{i['id']} {i['title']} ({i['owner']}, due {i['due']})" for i in overdue[:5]))
    rate = data.kpis.change_failure_rate_pct
    if rate is not None and rate > 15:
        later.append(f"Maintenance change failure rate is {rate:.0f}%: run the failing steps as dry runs first.")
    return urgent + later
