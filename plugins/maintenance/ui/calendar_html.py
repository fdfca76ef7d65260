"""The "Maintenance calendar" page as HTML: a Jinja template (include/ui/calendar.html.j2) and
small inline SVG charts, so the page needs no script and no other request to show."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from maintenance.ui.calendar_data import CalendarPage

TEMPLATE = Path(__file__).resolve().parents[3] / "include" / "ui" / "calendar.html.j2"
COLOURS = {"blackout": "#dc2626", "freeze": "#ea580c", "window": "#16a34a"}


def timeline(page: CalendarPage, tz, width: int = 900) -> dict:
    """Bars for the periods and windows ahead, on a strip of the page's days, and month ticks."""
    span = (page.end - page.start).total_seconds()

    def x(at: datetime) -> float:
        return round(max(0.0, min(1.0, (at - page.start).total_seconds() / span)) * width, 1)

    rows = {"blackout": 0, "freeze": 0, "window": 1}
    bars = [{"x": x(p.start), "w": max(2.0, x(p.end) - x(p.start)), "y": 18 + 22 * rows[p.kind],
             "colour": COLOURS[p.kind], "title": p.describe(tz)}
            for p in [*page.periods, *(w.period for w in page.windows)]]
    ticks, local = [], page.start.astimezone(tz)
    year, month = local.year, local.month
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        at = datetime(year, month, 1, tzinfo=tz)
        if at >= page.end:
            break
        ticks.append({"x": x(at), "label": f"{at:%b %Y}"})
    return {"width": width, "bars": bars, "ticks": ticks}


def bars(values: list[tuple[str, list[float]]], colours: list[str], *, width: int = 900, height: int = 120) -> dict:
    """A stacked bar chart: one bar per label, its parts coloured in order."""
    top = max((sum(v) for _, v in values), default=0) or 1
    step = width / max(len(values), 1)
    shown = []
    for i, (label, parts) in enumerate(values):
        y = height
        for value, colour in zip(parts, colours, strict=False):
            h = round(value / top * (height - 10), 1)
            y -= h
            if h:
                shown.append({"x": round(i * step + 1, 1), "y": round(y, 1), "w": round(step - 2, 1), "h": h,
                              "colour": colour, "title": f"{label}: {value:g}"})
    return {"width": width, "height": height, "bars": shown, "top": top}


def render(page: CalendarPage, policy, *, user: str) -> str:
    import jinja2

    tz = policy.tz
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["local"] = lambda at, fmt="%Y-%m-%d %H:%M %Z": at.astimezone(tz).strftime(fmt)
    per_day = bars([(f"{day:%m-%d}", [applied, failed, other]) for day, applied, failed, other in page.actions_per_day],
                   ["#16a34a", "#dc2626", "#94a3b8"])
    downtime = bars([(label, [k.planned_downtime_minutes, k.unplanned_downtime_minutes])
                     for label, k in page.kpi_months], ["#2563eb", "#dc2626"], width=420)
    changes = bars([(label, [k.actions_applied - k.actions_failed_or_caused_incident,
                             k.actions_failed_or_caused_incident]) for label, k in page.kpi_months],
                   ["#16a34a", "#dc2626"], width=420)
    return env.from_string(TEMPLATE.read_text()).render(
        page=page, tz=tz, policy=policy, user=user, timeline=timeline(page, tz), per_day=per_day,
        downtime=downtime, changes=changes, kpi_targets=policy.reports.kpi_targets)
