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
