"""Rendering a report: charts as PNG files and one HTML page that shows them."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from maintenance.reports import charts
from maintenance.reports.data import ReportData

TEMPLATES = Path(__file__).resolve().parents[3] / "include" / "reports"


@dataclass
class Rendered:
    html: str
    files: dict[str, bytes]  # chart name -> PNG bytes (also embedded in the html, for Slack uploads)
    title: str


def render(data: ReportData, *, tz, targets, dag_id: str, run_id: str, generated: datetime) -> Rendered:
    import jinja2

    k = data.kpis
    scale = (data.end - data.start).total_seconds() / (30 * 86400)
    chart_specs = [
        ("kpis", "KPIs against targets", lambda: charts.kpis_vs_targets(k.checks)),
        ("downtime", "Downtime budget", lambda: charts.downtime_budget(
            k.planned_downtime_minutes, k.unplanned_downtime_minutes,
            targets.planned_downtime_minutes_per_month * scale, targets.unplanned_downtime_minutes_per_month * scale)),
        ("bloat", "Table and index bloat (%)", lambda: charts.series(
            "Table and index bloat", data.series["bloat"], "%")),
        ("archive", "Rows archived", lambda: charts.series("Rows archived", data.series["archived_rows"], "rows")),
        ("restore", "Restore duration (s)", lambda: charts.series(
            "Restore duration", data.series["restore_seconds"], "s")),
        ("redis_memory", "Redis used memory (MB)", lambda: charts.series(
            "Redis used memory", data.series["redis_used_memory_mb"], "MB")),
        ("redis_hits", "Redis hit ratio", lambda: charts.series("Redis hit ratio", data.series["redis_hit_ratio"])),
        ("actions", "Maintenance actions per week", lambda: charts.actions_per_week(data.actions_per_week)),
    ]
    files = {f"charts/{name}.png": make() for name, _, make in chart_specs}
    # The page carries its charts (data: URIs): one object in S3, readable through one signed link.
    embedded = {path: "data:image/png;base64," + base64.b64encode(png).decode() for path, png in files.items()}
    title = f"Pathfinity {data.kind} maintenance report, {data.start.astimezone(tz):%Y-%m-%d}"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)
    html = env.get_template("report.html.j2").render(
        title=title, start=f"{data.start.astimezone(tz):%Y-%m-%d %H:%M}",
        end=f"{data.end.astimezone(tz):%Y-%m-%d %H:%M}", tz=str(tz), generated=generated.isoformat(timespec="seconds"),
        dag_id=dag_id, run_id=run_id, recommendations=data.recommendations, kpis=k,
        charts=[{"file": embedded[f"charts/{name}.png"], "title": t} for name, t, _ in chart_specs],
        findings=data.findings, incidents=data.incidents, action_items=data.action_items,
        approvals=data.approvals)
    return Rendered(html, files, title)


def slack_text(data: ReportData, rendered: Rendered, link: str, tz) -> str:
    k = data.kpis
    missed = [n.replace("_", " ") for n, c in k.checks.items() if not c["met"]]
    lines = [f":bar_chart: *{rendered.title}*",
             f"Period {data.start.astimezone(tz):%Y-%m-%d %H:%M} to {data.end.astimezone(tz):%Y-%m-%d %H:%M} ({tz}).",
             f"Uptime {k.uptime_pct:.3f}%, unplanned downtime {k.unplanned_downtime_minutes:.0f} min, "
             f"planned {k.planned_downtime_minutes:.0f} min, {k.incidents} incident(s), "
             f"{k.actions_applied} maintenance action(s)."
             + (f" MTTR {k.mttr_minutes:.0f} min." if k.mttr_minutes is not None else "")
             + (f" MTTA {k.mtta_minutes:.0f} min." if k.mtta_minutes is not None else ""),
             "Targets missed: " + (", ".join(missed) if missed else "none") + "."]
    if data.recommendations:
        lines.append("Top recommendations:")
        lines += [f"{n}. {r}" for n, r in enumerate(data.recommendations[:5], 1)]
    lines.append(f"Full report: {link}")
    return "\n".join(lines)
