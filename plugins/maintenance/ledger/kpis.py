"""The procedures' maintenance KPIs (section 9), computed from the ledger for any period.

Downtime is the time inside the period during which some outage incident was open: an
incident that crosses the period's start or end counts only its part inside; an unresolved
outage counts until the period's end or ``now``, whichever comes first; outages that overlap
count their time once (two incidents of one outage are not twice the downtime). When the policy
names an availability series, the spans in which Prometheus saw the platform down are merged in
the same way: a month in which nobody opened an incident is not 100% up if the probe failed.
Planned downtime is the time under a planned outage or a window-only step of the ledger (VACUUM
FULL, series deletion), even when an unplanned outage overlaps it. MTTR is over the outages
opened in the period; MTTA over every incident opened in it that was acknowledged. Targets
given per month are scaled to the period's length.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from psycopg import sql

from maintenance.policy.model import KpiTargets

MONTH = timedelta(days=30)


@dataclass
class KPIs:
    start: datetime
    end: datetime
    period_minutes: float
    uptime_pct: float
    planned_downtime_minutes: float
    unplanned_downtime_minutes: float
    incidents: int
    failures: int
    mttr_minutes: float | None
    mtta_minutes: float | None
    probe_down_minutes: float | None
    mtbf_hours: float | None
    maintenance_minutes: float
    maintenance_overhead_pct: float
    actions_applied: int
    actions_failed_or_caused_incident: int
    change_failure_rate_pct: float | None
    checks: dict[str, dict]

    def as_dict(self) -> dict:
        data = asdict(self)
        data["start"], data["end"] = self.start.isoformat(), self.end.isoformat()
        return data


def _clipped(opened: datetime, resolved: datetime | None, start: datetime, end: datetime,
             now: datetime) -> tuple[datetime, datetime] | None:
    stop = min(resolved or min(end, now), end)
    begin = max(opened, start)
    return (begin, stop) if stop > begin else None


def _union_minutes(spans: list[tuple[datetime, datetime]]) -> float:
    """The minutes covered by at least one of ``spans``."""
    total, current = 0.0, None
    for begin, stop in sorted(spans):
        if current and begin <= current[1]:
            current = (current[0], max(current[1], stop))
            continue
        if current:
            total += (current[1] - current[0]).total_seconds()
        current = (begin, stop)
    if current:
        total += (current[1] - current[0]).total_seconds()
    return total / 60


def _check(value: float | None, unit: str, limit: float, *, above: bool = False) -> dict:
    met = value is None or (value > limit if above else value < limit)
    return {"value": value, "unit": unit, "limit": limit, "above": above,
            "target": f"{'>' if above else '<'} {limit:g}" if above else f"< {limit:.1f}", "met": met}


def _window_steps(conn, s, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The spans of the ledger's window-only steps (planned, disruptive by declaration)."""
    from maintenance.actions import REGISTRY

    window = [[k.system, k.name] for k in REGISTRY.values() if k.window]
    rows = conn.execute(sql.SQL("""
        SELECT started_at, started_at + make_interval(secs => coalesce(duration_ms, 0) / 1000.0) FROM {}.actions
        WHERE NOT dry_run AND outcome IN ('applied', 'rolled_back', 'failed', 'interrupted', 'running')
          AND started_at < %s AND started_at + make_interval(secs => coalesce(duration_ms, 0) / 1000.0) > %s
          AND (system || '.' || action) = ANY(%s)""").format(s), (end, start, [".".join(w) for w in window])).fetchall()
    return [(max(a, start), min(b, end)) for a, b in rows if b > a]


def compute(conn, schema: str, start: datetime, end: datetime, *, now: datetime,
            targets: KpiTargets | None = None,
            probe_down: list[tuple[datetime, datetime]] | None = None) -> KPIs:
    """The period's KPIs; ``probe_down``: the spans the availability series saw the platform
    down (None: the policy names no series)."""
    targets = targets or KpiTargets()
    if end <= start:
        raise ValueError(f"period: end ({end}) must be after start ({start})")
    s = sql.Identifier(schema)
    incidents = conn.execute(sql.SQL("""
        SELECT opened_at, resolved_at, outage, planned, acknowledged_at FROM {}.incidents
        WHERE opened_at < %s AND (resolved_at IS NULL OR resolved_at > %s)""").format(s), (end, start)).fetchall()
    period_minutes = (end - start).total_seconds() / 60
    outages = [(span, p) for o, r, out, p, _ in incidents if out
               for span in [_clipped(o, r, start, end, now)] if span is not None]
    planned_spans = [span for span, p in outages if p] + _window_steps(conn, s, start, end)
    probe = [(max(a, start), min(b, end)) for a, b in probe_down or () if min(b, end) > max(a, start)]
    planned = _union_minutes(planned_spans)
    unplanned = _union_minutes([span for span, _ in outages] + planned_spans + probe) - planned
    in_period = [(o, r, out, p) for o, r, out, p, _ in incidents if start <= o < end and not p]
    repaired = [(r - o).total_seconds() / 60 for o, r, out, _ in in_period if r is not None and out]
    acknowledged = [(a - o).total_seconds() / 60 for o, _, _, p, a in incidents
                    if start <= o < end and not p and a is not None]
    failures = sum(1 for _, _, out, _ in in_period if out)
    up_minutes = period_minutes - planned - unplanned

    applied, failed_changes, busy_ms = conn.execute(sql.SQL("""
        SELECT count(*) FILTER (WHERE a.outcome IN ('applied', 'rolled_back', 'failed')),
               count(*) FILTER (WHERE a.outcome IN ('rolled_back', 'failed')
                                   OR EXISTS (SELECT 1 FROM {s}.incidents i WHERE i.caused_by_action = a.id)),
               coalesce(sum(a.duration_ms) FILTER (WHERE NOT a.dry_run), 0)
        FROM {s}.actions a WHERE a.started_at >= %s AND a.started_at < %s""").format(s=s), (start, end)).fetchone()

    scale = (end - start) / MONTH
    uptime = 100 * up_minutes / period_minutes
    mttr = sum(repaired) / len(repaired) if repaired else None
    planned_limit = targets.planned_downtime_minutes_per_month * scale
    unplanned_limit = targets.unplanned_downtime_minutes_per_month * scale
    # Each check: its value, its unit, its limit and which side of it is good.
    checks = {
        "uptime_pct": _check(uptime, "%", targets.uptime_pct, above=True),
        "planned_downtime_minutes": _check(planned, "min", planned_limit),
        "unplanned_downtime_minutes": _check(unplanned, "min", unplanned_limit),
        "mttr_minutes": _check(mttr, "min", targets.mttr_minutes),
    }
    return KPIs(
        start=start, end=end, period_minutes=period_minutes, uptime_pct=uptime,
        planned_downtime_minutes=planned, unplanned_downtime_minutes=unplanned,
        incidents=len(in_period), failures=failures, mttr_minutes=mttr,
        mtta_minutes=sum(acknowledged) / len(acknowledged) if acknowledged else None,
        probe_down_minutes=None if probe_down is None else _union_minutes(probe),
        mtbf_hours=(up_minutes / 60 / failures) if failures else None,
        maintenance_minutes=busy_ms / 60000, maintenance_overhead_pct=100 * busy_ms / 60000 / period_minutes,
        actions_applied=applied, actions_failed_or_caused_incident=failed_changes,
        change_failure_rate_pct=(100 * failed_changes / applied) if applied else None,
        checks=checks,
    )
