"""Friday's post-mortem summary (procedures 2.2): the week's incidents from the ledger, each
with its times to acknowledge and resolve, its cause and the maintenance action that caused it;
incidents whose cause is still unrecorded are the post-mortems due. The post-mortems' open
action items are listed until closed; overdue ones are reminded (a finding, and a line naming
the owner) at the policy's interval."""

from __future__ import annotations

from datetime import datetime, timedelta

from maintenance.operator import MaintenanceOperator


def render(items: list[dict], actions: list[dict], start: datetime, end: datetime, tz) -> str:
    head = (f":memo: *Post-mortem summary* {start.astimezone(tz):%Y-%m-%d} to {end.astimezone(tz):%Y-%m-%d}: "
            f"{len(items)} incident(s), {sum(i['post_mortem_due'] for i in items)} post-mortem(s) due")
    lines = [head]
    for i in items:
        state = f"resolved in {i['minutes']} min" if i["resolved_at"] else f"{i['minutes']} min, still open"
        acked = (f"acknowledged in {i['minutes_to_acknowledge']} min" if i["minutes_to_acknowledge"] is not None
                 else "never acknowledged")
        lines.append(f"• #{i['id']} {i['severity']}{' outage' if i['outage'] else ''}: {i['summary']} ({acked}, "
                     f"{state}); " + (f"cause: {i['cause']}" if i["cause"] else "cause not recorded: post-mortem due")
                     + (f"; caused by {i['caused_by']}" if i["caused_by"] else ""))
    if actions:
        lines.append(f"*Open action items* ({len(actions)}); close them from the maintenance_incident form:")
        for a in actions:
            late = f" :alarm_clock: *overdue*, {a['owner']} please update" if a["overdue"] else ""
            lines.append(f"• #{a['id']} (incident {a['incident_id']}) {a['title']}: {a['owner']}, due {a['due']}{late}")
    return "\n".join(lines)


class PostMortemSummaryOperator(MaintenanceOperator):
    """The week's incidents (the seven days before the run's day) and the open action items,
    posted to the summary channel; overdue items reminded."""

    def run(self, run):
        from maintenance import clock
        from maintenance.ledger import incident_log
        from maintenance.notify import slack
        from maintenance.reports.data import period_for

        policy, conn, schema = run.policy, run.ledger.conn, run.ledger.schema_name
        start, end = period_for("weekly", run.logical_date, policy.tz)
        now = clock.now()
        items = incident_log.incidents_in(conn, schema, start, end, now=now)
        every = timedelta(days=policy.incidents.action_item_reminder_days)
        actions = [a | {"overdue": a["due"] < end.astimezone(policy.tz).date()}
                   for a in incident_log.action_items(conn, schema, open_only=True)]
        text = render(items, actions, start, end, policy.tz)
        for line in text.splitlines():
            self.log.info("%s", line)
        for item in items:
            if item["post_mortem_due"]:
                run.ledger.record_finding("post_mortem_due", f"incident {item['id']}", "warning",
                                          f"{item['severity']} '{item['summary']}' has no recorded cause", item)
        remind = [a for a in actions if a["overdue"] and (a["reminded_at"] is None or now - a["reminded_at"] >= every)]
        for a in actions:
            if a["overdue"]:
                run.ledger.record_finding("action_item_overdue", f"action item {a['id']}", "warning",
                                          f"'{a['title']}' ({a['owner']}) was due {a['due']}",
                                          {k: str(v) for k, v in a.items()})
        delivered = run.dry_run or slack.post(policy.connections.slack, policy.notifications.summary_channel, text)
        if remind and delivered and not run.dry_run:
            incident_log.reminded(conn, schema, [a["id"] for a in remind], now)
        return {"period": [start.isoformat(), end.isoformat()], "incidents": items, "delivered": delivered,
                "action_items": [{k: str(v) if not isinstance(v, int | bool | type(None)) else v for k, v in a.items()}
                                 for a in actions], "reminded": [a["id"] for a in remind]}

    def describe(self, summary):
        due = sum(i["post_mortem_due"] for i in summary["incidents"])
        late = sum(a["overdue"] for a in summary["action_items"])
        return (f"{len(summary['incidents'])} incidents this week, {due} post-mortem(s) due, "
                f"{len(summary['action_items'])} open action item(s), {late} overdue")
