"""CalendarReviewOperator: the planned windows ahead, read every day. Read-only."""

from __future__ import annotations

from maintenance.operator import MaintenanceOperator


class CalendarReviewOperator(MaintenanceOperator):
    """The next planned window; the months ahead that have none (a finding each, so people can
    set ``planned_window.dates`` or plan emergency maintenance in time); and, when window-only
    work (de-bloat, node reboots, series deletion) has had no usable window for longer than
    ``planned_window.max_wait_days``, an overdue finding that pages on-call.

    :param look_ahead_months: how many months ahead months without a window are reported.
    """

    def __init__(self, *, look_ahead_months: int = 6, **kwargs) -> None:
        super().__init__(**kwargs)
        self.look_ahead_months = look_ahead_months

    def run(self, run) -> dict:
        from maintenance.calendar import MaintenanceCalendar
        from maintenance.notify.pages import page_once

        policy, now = run.policy, run.logical_date
        tz, window = policy.tz, policy.planned_window
        calendar = MaintenanceCalendar.from_policy(policy)
        upcoming = calendar.next_window(now)
        without = calendar.months_without_window(now, self.look_ahead_months)
        for month in without:
            year, number = map(int, month.split("-"))
            nominal = calendar.window_on(calendar.nominal_day(year, number))
            covering = sorted({p.name for p in calendar.blocking(nominal)}) or ["every candidate day"]
            run.ledger.record_finding(
                "no_window", month, "warning",
                f"no planned window in {month}: {', '.join(covering)} cover every {window.weekday}; window-only work "
                "waits. Set planned_window.dates to a day outside them, or plan emergency maintenance",
                {"month": month, "blackouts": covering})
        last = calendar.last_window(now)
        waited = (now - last.end).days if last else None
        problems = {}
        if calendar.window_at(now) is None and (waited is None or waited > window.max_wait_days):
            since = f"since {last.end.astimezone(tz):%Y-%m-%d} ({waited} days)" if last else "in two years"
            nxt = f"the next is {upcoming.describe(tz)}" if upcoming else "none is left in the next 24 months"
            message = (f"window-only work has had no planned window {since}, more than planned_window.max_wait_days "
                       f"({window.max_wait_days}); {nxt}. Critical work (a security reboot) may go ahead only as "
                       "emergency maintenance")
            run.ledger.record_finding("window_overdue", "planned_window", "critical", message,
                                      {"last": last.end.isoformat() if last else None, "waited_days": waited})
            problems["window_overdue"] = message
        pages = page_once(run.ledger, policy, scope="calendar", title="Maintenance windows overdue",
                          problems=problems, context=run.context) if problems else None
        return {"next_window": upcoming.describe(tz) if upcoming else None,
                "months_without_window": without, "days_since_last_window": waited,
                "overdue": bool(problems), "pages": pages}

    def describe(self, summary: dict) -> str:
        head = f"next {summary['next_window']}" if summary["next_window"] else "no window in 24 months"
        gaps = f"; no window in {', '.join(summary['months_without_window'])}" if summary["months_without_window"] \
            else ""
        return head + gaps + ("; OVERDUE: on-call paged" if summary["overdue"] else "")


class WindowNoticeOperator(MaintenanceOperator):
    """The notice of the next planned window, once, as soon as it is ``planned_window.notice_days``
    away (procedures 1.1): what will run (from the de-bloat, archive and node planners, read-only),
    the expected duration, the systems affected and each step's rollback, to the stakeholders'
    channel, kept in the ledger. A scheduled window's disruptive work runs only when its notice
    went out in time (the gate's ``notice`` blocker). Dry run: the notice is shown, not sent."""

    def run(self, run) -> dict:
        from datetime import timedelta

        from maintenance import clock
        from maintenance.calendar import MaintenanceCalendar
        from maintenance.ledger import notices

        policy, now = run.policy, clock.now()
        window = MaintenanceCalendar.from_policy(policy).next_window(now)
        notice_days = timedelta(days=policy.planned_window.notice_days)
        # The daily run before the window is notice_days away sends it, so it is never short.
        if window is None or window.start - now > notice_days + timedelta(days=1):
            return {"window": window.describe(policy.tz) if window else None, "sent": False,
                    "why": "no window within planned_window.notice_days" if window else "no window in 24 months"}
        conn, schema = run.ledger.conn, run.ledger.schema_name
        already = notices.sent_for(conn, schema, window.start)
        if already:
            return {"window": window.describe(policy.tz), "sent": False,
                    "why": f"its notice went out {already['sent_at'].astimezone(policy.tz):%Y-%m-%d %H:%M %Z}"}
        parts, text = self.compose(run, window, now)
        if run.dry_run:
            for line in text.splitlines():
                self.log.info("%s", line)
            return {"window": window.describe(policy.tz), "sent": False, "why": "dry run", "text": text}
        from maintenance.notify import slack

        channel = policy.notifications.stakeholders_channel
        delivered = slack.post(policy.connections.slack, channel, text)
        notices.record(conn, schema, window_start=window.start, window_end=window.end, sent_at=now, channel=channel,
                       text=text, parts=parts, delivered=delivered, run_id=run.ti.run_id)
        late = window.start - now < notice_days
        if late:
            run.ledger.record_finding("notice_late", window.name, "warning",
                                      f"the notice of {window.describe(policy.tz)} went out "
                                      f"{(window.start - now).days} days ahead, not "
                                      f"{policy.planned_window.notice_days}: its scheduled disruptive work is held",
                                      {"sent_at": now.isoformat()})
        return {"window": window.describe(policy.tz), "sent": True, "delivered": delivered, "channel": channel,
                "late": late, "text": text}

    def compose(self, run, window, now) -> tuple[dict, str]:
        from maintenance.change import notice
        from maintenance.pgsession import session

        policy = run.policy
        parts = {}
        for db in policy.postgres.databases:
            def plan(conn_id=db.conn_id, schemas=db.schemas):
                with session(conn_id) as conn:
                    return notice.debloat(conn, policy, schemas, now)

            def volumes(conn_id=db.conn_id):
                with session(conn_id) as conn:
                    return notice.archive(conn, policy, conn_id, window.start.astimezone(policy.tz).date())

            parts[f"de-bloat {db.conn_id}"] = notice.part(plan)
            if any(t.conn_id == db.conn_id for t in policy.archive.tables):
                parts[f"archive {db.conn_id}"] = notice.part(volumes)

        def nodes():
            from maintenance.incidents.operators import RunPlaybookOperator

            return notice.nodes(RunPlaybookOperator.kubernetes(policy)["core"], policy.kubernetes.nodes)

        parts["kubernetes nodes"] = notice.part(nodes)
        conn, schema = run.ledger.conn, run.ledger.schema_name
        text = notice.render(window, policy.tz, parts, backup=notice.last_backup(conn, schema),
                             duration=notice.last_duration_minutes(conn, schema),
                             series=list(policy.monitoring.delete_series),
                             run_url=policy.notifications.run_url(run.ti.dag_id, run.ti.run_id))
        return parts, text

    def describe(self, summary: dict) -> str:
        if summary["sent"]:
            late = " (late)" if summary["late"] else ""
            return f"notice of {summary['window']} sent to {summary['channel']}{late}"
        return f"no notice: {summary['why']}"
