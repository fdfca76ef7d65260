"""Friday's post-mortem summary (procedures 2.2): the week's incidents from the ledger, each
with its duration, cause and the maintenance action that caused it; incidents whose cause is
still unrecorded are the post-mortems due."""

from __future__ import annotations

from datetime import datetime

from maintenance.operator import MaintenanceOperator


def collect(conn, schema: str, start: datetime, end: datetime, *, now: datetime) -> list[dict]:
    from psycopg import sql

    rows = conn.execute(sql.SQL("""
        SELECT i.id, i.severity, i.summary, i.outage, i.planned, i.opened_at, i.resolved_at, i.cause,
               a.dag_id, a.task_id, a.target, a.action
        FROM {s}.incidents i LEFT JOIN {s}.actions a ON a.id = i.caused_by_action
        WHERE (i.opened_at >= %s AND i.opened_at < %s) OR (i.resolved_at IS NULL AND i.opened_at < %s)
        ORDER BY i.severity, i.opened_at""").format(s=sql.Identifier(schema)), (start, end, end)).fetchall()
    found = []
    for (ident, severity, summary, outage, planned, opened, resolved, cause, dag_id, task_id, target,
         action) in rows:
        minutes = ((resolved or now) - opened).total_seconds() / 60
        found.append({"id": ident, "severity": severity, "summary": summary, "outage": outage, "planned": planned,
                      "opened_at": opened.isoformat(), "resolved_at": resolved.isoformat() if resolved else None,
                      "minutes": round(minutes), "cause": cause,
                      "caused_by": f"{dag_id}.{task_id}: {action} {target}" if dag_id else None,
                      "post_mortem_due": not cause and not planned})
    return found


def render(items: list[dict], start: datetime, end: datetime, tz) -> str:
    head = (f":memo: *Post-mortem summary* {start.astimezone(tz):%Y-%m-%d} to {end.astimezone(tz):%Y-%m-%d}: "
            f"{len(items)} incident(s), {sum(i['post_mortem_due'] for i in items)} post-mortem(s) due")
    lines = [head]
    for i in items:
        state = f"{i['minutes']} min" + ("" if i["resolved_at"] else ", still open")
        lines.append(f"• #{i['id']} {i['severity']}{' outage' if i['outage'] else ''}: {i['summary']} ({state}); "
                     + (f"cause: {i['cause']}" if i["cause"] else "cause not recorded: post-mortem due")
                     + (f"; caused by {i['caused_by']}" if i["caused_by"] else ""))
    return "\n".join(lines)


class PostMortemSummaryOperator(MaintenanceOperator):
    """The week's incidents (the seven days before the run's day), posted to the summary channel."""

    def run(self, run):
        from maintenance import clock
        from maintenance.notify import slack
        from maintenance.reports.data import period_for

        policy = run.policy
        start, end = period_for("weekly", run.logical_date, policy.tz)
        items = collect(run.ledger.conn, run.ledger.schema_name, start, end, now=clock.now())
        text = render(items, start, end, policy.tz)
        for line in text.splitlines():
            self.log.info("%s", line)
        for item in items:
            if item["post_mortem_due"]:
                run.ledger.record_finding("post_mortem_due", f"incident {item['id']}", "warning",
                                          f"{item['severity']} '{item['summary']}' has no recorded cause", item)
        delivered = run.dry_run or slack.post(policy.connections.slack, policy.notifications.summary_channel, text)
        return {"period": [start.isoformat(), end.isoformat()], "incidents": items, "delivered": delivered}

    def describe(self, summary):
        due = sum(i["post_mortem_due"] for i in summary["incidents"])
        return f"{len(summary['incidents'])} incidents this week, {due} post-mortem(s) due"
