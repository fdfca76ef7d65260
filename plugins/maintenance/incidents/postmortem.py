"""The post-mortem document of one incident (procedures 7.2), rebuilt from what was recorded.

The timeline merges, in time order: the incident's own events (opened from the alert, every
Slack message and page, each playbook step and check, acknowledged, resolved), the alert's
states in Prometheus (pending, firing), the maintenance ledger's actions on every system from
two hours before it opened, and the maintenance tasks that ran then (Airflow's task events,
as the ledger recorded them). Impact: how long, how long until acknowledged, and the active
users the probe saw while it was open. The five whys, contributing factors and lessons are
sections for the people in the review to write; action items come from the ledger.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg import sql

LOOK_BACK = timedelta(hours=2)  # maintenance this long before the incident is in its timeline


def incident_type(incident: dict) -> str:
    """What kind of incident: the alert's name, or the summary's head for one opened by hand."""
    labels = incident.get("labels") or {}
    return labels.get("alertname") or incident["summary"].split(":", 1)[0].strip()[:80] or "manual"


def maintenance_around(conn, schema: str, start: datetime, end: datetime) -> list[dict]:
    """Ledger actions and maintenance task runs between ``start`` and ``end`` (not dry runs)."""
    s = sql.Identifier(schema)
    acts = conn.execute(sql.SQL("""
        SELECT started_at, dag_id, task_id, system, target, action, outcome, rows_affected, error, id
        FROM {s}.actions WHERE started_at >= %s AND started_at <= %s AND NOT dry_run AND system <> 'incident'
        ORDER BY started_at LIMIT 500""").format(s=s), (start, end)).fetchall()
    tasks = conn.execute(sql.SQL("""
        SELECT started_at, ended_at, dag_id, task_id, run_id, try_number, outcome FROM {s}.task_runs
        WHERE started_at <= %s AND coalesce(ended_at, now()) >= %s AND NOT dry_run AND dag_id <> 'maintenance_incident'
        ORDER BY started_at LIMIT 500""").format(s=s), (end, start)).fetchall()
    found = [{"at": at, "source": "maintenance", "text": f"{system} {action} {target}: {outcome}"
              + (f" ({rows} rows)" if rows else "") + (f"; {error[:150]}" if error else "")
              + f" [{dag}.{task}, action {ident}]"}
             for at, dag, task, system, target, action, outcome, rows, error, ident in acts]
    for began, ended, dag, task, run_id, try_number, outcome in tasks:
        found.append({"at": began, "source": "airflow", "text": f"task {dag}.{task} started (run {run_id}, "
                                                                 f"try {try_number})"})
        if ended is not None:
            found.append({"at": ended, "source": "airflow", "text": f"task {dag}.{task} ended: {outcome}"})
    return found


def alert_states(prometheus: str, alertname: str, start: datetime, end: datetime) -> list[dict]:
    """When the alert went pending and firing, from Prometheus's ALERTS series."""
    from maintenance.monitoring.availability import query_range

    found = []
    for state in ("pending", "firing"):
        series = query_range(prometheus, f'max(ALERTS{{alertname="{alertname}",alertstate="{state}"}})',
                             start=start, end=end, step=15)
        times = [at for at, value in series if value > 0]
        if times:
            found.append({"at": times[0], "source": "prometheus", "text": f"alert {alertname} {state}"})
    return found


def affected_users(conn, schema: str, start: datetime, end: datetime) -> int | None:
    """The most active users the probe saw while the incident was open (None: no sample)."""
    row = conn.execute(sql.SQL("""
        SELECT max(value) FROM {s}.metrics WHERE system = 'platform' AND name = 'active_users'
        AND recorded_at >= %s AND recorded_at <= %s""").format(s=sql.Identifier(schema)), (start, end)).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def _minutes(a: datetime | None, b: datetime | None) -> str:
    from maintenance.incidents.notify import spoken

    return spoken((b - a).total_seconds()) if a and b else "not yet"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(incident: dict, timeline: list[dict], *, users: int | None, items: list[dict],
                    runbook: str | None, tz, generated: datetime, run_url: str) -> str:
    opened, resolved = incident["opened_at"], incident["resolved_at"]
    local = lambda at: at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")  # noqa: E731
    lines = [
        f"# Post-mortem: incident {incident['id']} ({incident['severity']})", "",
        f"**{incident['summary']}**", "",
        f"- Type: `{incident_type(incident)}`",
        f"- Opened: {local(opened)}; resolved: {local(resolved) if resolved else 'still open'}",
        f"- Cause: {incident.get('cause') or '_not recorded yet: the review decides it_'}",
        f"- Written {local(generated)} by the maintenance_incident DAG ({run_url}); the sections below the "
        "timeline are for the review to complete.", "",
        "## Impact", "",
        f"- Duration: {_minutes(opened, resolved)}" + (" (platform down)" if incident.get("outage") else ""),
        f"- Time to acknowledge: {_minutes(opened, incident.get('acknowledged_at'))}",
        f"- Time to resolve: {_minutes(opened, resolved)}",
        "- Active users while it was open: " + (f"{users:,} at most (the load probe's samples)" if users is not None
                                                 else "unknown: the load probe has no sample in that time"), "",
        "## Timeline", "",
        f"Times in {tz.key if hasattr(tz, 'key') else tz}.", "",
        "| Time | Source | What happened |", "|---|---|---|",
    ]
    # A Slack message's first line says what was told; its links are in the channel.
    lines += [f"| {local(e['at'])} | {e['source']} | {_cell(e['text'].splitlines()[0])} |" for e in timeline]
    lines += ["", "## Five whys", ""] + [f"{n}. Why? " for n in range(1, 6)]
    lines += ["", "## Contributing factors", "", "- ", "", "## Lessons learned", "", "- What went well: ",
              "- What went badly: ", "- Where we were lucky: ", "", "## Action items", ""]
    if items:
        lines += ["| # | Action | Owner | Due | State |", "|---|---|---|---|---|"]
        lines += [f"| {i['id']} | {_cell(i['title'])} | {_cell(i['owner'])} | {i['due']} | "
                  + (f"closed {i['closed_at']:%Y-%m-%d} by {i['closed_by']}" if i["closed_at"] else "open") + " |"
                  for i in items]
    else:
        lines.append("None yet. Add them from the maintenance_incident form (action `add_action_item`, this "
                     f"incident's number {incident['id']}, an owner and a due date).")
    lines += ["", "## Runbook", "", runbook or f"No runbook mentions `{incident_type(incident)}`: write one "
                                              "(a finding stays open until one does).", ""]
    return "\n".join(lines)


def render_html(markdown: str, title: str) -> str:
    from html import escape

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>{escape(title)}</title>"
            "<meta name=viewport content='width=device-width,initial-scale=1'><style>"
            "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1f2937}"
            "table{border-collapse:collapse;width:100%}td,th{border:1px solid #d1d5db;padding:.3rem .5rem;"
            "text-align:left;vertical-align:top}th{background:#f3f4f6}code{background:#f3f4f6;padding:0 .2rem}"
            f"</style><body>{body}</body></html>")


def runbook_for(kind: str, files) -> str | None:
    """The first runbook that mentions the incident's type, as 'path' (None: none does)."""
    needle = kind.lower()
    for path in files:
        if needle in path.read_text(errors="replace").lower():
            return f"`{path}` mentions `{kind}`."
    return None
