"""Change management's operators: the calendar review, the window's notice, the Change Advisory
Board's decision, and emergency maintenance's approval request and record."""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

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
        last, waited, late = calendar.overdue(now, window.max_wait_days)
        problems = {}
        if late:
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
    """The notice of the next planned window, once, on the last daily run at least
    ``planned_window.notice_days`` before it (procedures 1.1): what will run (from the de-bloat,
    archive and node planners, read-only), the expected duration, the systems affected and each
    step's rollback, to the stakeholders' channel, kept in the ledger. While the window's
    approval is undecided it hands on the approval request's run id (the next task asks the
    Change Advisory Board in the Airflow UI); on other days it is skipped, saying why. A
    scheduled window's disruptive work runs only when its notice went out in time and the board
    approved (the gate's ``notice`` and ``approval`` blockers). Dry run: shown, not sent."""

    def run(self, run) -> dict:
        from datetime import timedelta

        from airflow.sdk.exceptions import AirflowSkipException

        from maintenance import clock
        from maintenance.calendar import MaintenanceCalendar
        from maintenance.ledger import notices

        policy, now = run.policy, clock.now()
        if now - run.logical_date > timedelta(days=1):  # told once, by the day's own run, about what lies ahead
            raise AirflowSkipException(f"a run for a past day ({run.logical_date.astimezone(policy.tz):%Y-%m-%d}) "
                                       "sends no notice: today's run does")
        window = MaintenanceCalendar.from_policy(policy).next_window(now)
        notice_days = timedelta(days=policy.planned_window.notice_days)
        # The daily run before the window is notice_days away sends it, so it is never short.
        if window is None or window.start - now > notice_days + timedelta(days=1):
            raise AirflowSkipException(f"no window within {policy.planned_window.notice_days} days; the next is "
                                       + (window.describe(policy.tz) if window else "none in 24 months"))
        conn, schema = run.ledger.conn, run.ledger.schema_name
        summary = {"window": window.describe(policy.tz), "window_start": window.start.isoformat(), "sent": False}
        already = notices.sent_for(conn, schema, window.start)
        if already is None:
            parts, text = self.compose(run, window, now)
            if run.dry_run:
                for line in text.splitlines():
                    self.log.info("%s", line)
                raise AirflowSkipException("dry run: the notice is in the log above, not sent")
            summary |= self.send(run, window, now, parts, text, notice_days)
        decided = notices.approval_for(conn, schema, window.start)
        if not policy.planned_window.approval or decided:
            if not summary["sent"]:
                said = f"; the board {decided['decision']} it" if decided else ""
                raise AirflowSkipException(f"the notice of {window.describe(policy.tz)} went out "
                                           f"{already['sent_at'].astimezone(policy.tz):%Y-%m-%d %H:%M %Z}{said}")
            return summary
        return summary | {"approval_run_id": f"cab__{window.start:%Y%m%dT%H%MZ}"}

    def send(self, run, window, now, parts: dict, text: str, notice_days) -> dict:
        from maintenance.ledger import notices
        from maintenance.notify import slack

        policy = run.policy
        channel = policy.notifications.stakeholders_channel
        if policy.planned_window.approval:
            text += "\nThe Change Advisory Board approves it in the Airflow UI (maintenance_window_approval)."
        delivered = slack.post(policy.connections.slack, channel, text)
        notices.record(run.ledger.conn, run.ledger.schema_name, window_start=window.start, window_end=window.end,
                       sent_at=now, channel=channel, text=text, parts=parts, delivered=delivered,
                       run_id=run.ti.run_id)
        late = window.start - now < notice_days
        if late:
            run.ledger.record_finding("notice_late", window.name, "warning",
                                      f"the notice of {window.describe(policy.tz)} went out "
                                      f"{(window.start - now).days} days ahead, not "
                                      f"{policy.planned_window.notice_days}: its scheduled disruptive work is held",
                                      {"sent_at": now.isoformat()})
        return {"sent": True, "delivered": delivered, "channel": channel, "late": late, "text": text}

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
            from maintenance.kubernetes.clients import clients

            return notice.nodes(clients(policy.kubernetes.conn_id)["core"], policy.kubernetes.nodes)

        parts["kubernetes nodes"] = notice.part(nodes)
        conn, schema = run.ledger.conn, run.ledger.schema_name
        text = notice.render(window, policy.tz, parts, backup=notice.last_backup(conn, schema),
                             duration=notice.last_duration_minutes(conn, schema),
                             series=list(policy.monitoring.delete_series),
                             run_url=policy.notifications.run_url(run.ti.dag_id, run.ti.run_id))
        return parts, text

    def describe(self, summary: dict) -> str:
        said = (f"notice of {summary['window']} sent to {summary['channel']}" + (" (late)" if summary["late"] else "")
                if summary["sent"] else f"notice of {summary['window']} already sent")
        return said + ("; the board's approval asked" if summary.get("approval_run_id") else "")


def hitl_answer(run, task_id: str):
    """(decision, who, when) of an Approve/Reject human-in-the-loop task; no answer by its
    timeout (the default option chosen by nobody) is ``timed_out``."""
    from datetime import datetime

    from maintenance import clock

    said = run.ti.xcom_pull(task_ids=task_id) or {}
    chosen, who = said.get("chosen_options") or [], said.get("responded_by_user") or {}
    decision = ("approved" if chosen == ["Approve"] else "rejected") if who else "timed_out"
    at = said.get("responded_at") or clock.now()
    return (decision, (who.get("name") or who.get("id")) if who else None,
            datetime.fromisoformat(at) if isinstance(at, str) else at)


class RecordApprovalOperator(MaintenanceOperator):
    """The Change Advisory Board's decision on a window, from the approval task's answer in the
    Airflow UI (or its timeout), into the ledger and the stakeholders' channel.

    :param approval_task_id: the human-in-the-loop task whose answer is recorded.
    """

    def __init__(self, *, approval_task_id: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.approval_task_id = approval_task_id

    def run(self, run) -> dict:

        from maintenance.form import approved_window
        from maintenance.ledger import notices
        from maintenance.notify import slack

        policy = run.policy
        window_start = approved_window(run.context)
        decision, decided_by, decided_at = hitl_answer(run, self.approval_task_id)
        notices.record_approval(run.ledger.conn, run.ledger.schema_name, window_start=window_start,
                                decision=decision, decided_by=decided_by, decided_at=decided_at,
                                run_id=run.ti.run_id)
        shown = window_start.astimezone(policy.tz)
        text = {"approved": f":white_check_mark: The planned window of {shown:%Y-%m-%d %H:%M %Z} is approved by "
                            f"{decided_by}.",
                "rejected": f":no_entry: The planned window of {shown:%Y-%m-%d %H:%M %Z} was rejected by "
                            f"{decided_by}: its disruptive work is skipped.",
                "timed_out": f":hourglass: Nobody approved the planned window of {shown:%Y-%m-%d %H:%M %Z} in time: "
                             "its disruptive work is skipped."}[decision]
        delivered = slack.post(policy.connections.slack, policy.notifications.stakeholders_channel, text)
        return {"window_start": window_start.isoformat(), "decision": decision, "decided_by": decided_by,
                "decided_at": decided_at.isoformat(), "delivered": delivered}

    def describe(self, summary: dict) -> str:
        by = f" by {summary['decided_by']}" if summary["decided_by"] else ""
        return f"window {summary['window_start']}: {summary['decision']}{by}"


class EmergencyApprovalRequestOperator(TriggerDagRunOperator):
    """Asks for a forced run's two approvals (maintenance.change.emergency): when the run was
    forced with a reason and something the reason forces past stands in the way now (a blackout,
    a freeze, the window), it triggers ``maintenance_emergency_approval`` for this run, once; the
    run's gates wait for both answers. Otherwise it is skipped, saying why. A paused approval DAG
    fails it, loudly: nobody would be asked."""

    ui_color = "#fecaca"

    def __init__(self, **kwargs) -> None:
        from maintenance.change.emergency import APPROVAL_DAG

        kwargs.setdefault("doc_md", "Asks the on-call lead and a director to approve a forced run "
                                    "(maintenance_emergency_approval); skipped when the run is not forced.")
        super().__init__(trigger_dag_id=APPROVAL_DAG, skip_when_already_exists=True, fail_when_dag_is_paused=True,
                         **kwargs)

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowSkipException

        from maintenance.change import emergency
        from maintenance.form import RunForm
        from maintenance.policy import load_policy

        reason = RunForm.of(context, strict=False).force_reason
        if not reason:
            raise AirflowSkipException("not forced: no emergency maintenance to approve")
        policy = load_policy()
        if not policy.emergency.approval:
            raise AirflowSkipException("the policy's emergency.approval is off: the reason alone forces")
        standing = self.forced_past(policy, context)
        if not standing:
            raise AirflowSkipException("forced, but nothing the reason forces past stands in the way now "
                                       "(no blackout, freeze or closed window): no approval needed")
        ti = context["ti"]
        self.trigger_run_id = emergency.approval_run_id(ti.dag_id, ti.run_id)
        self.conf = {"dag_id": ti.dag_id, "run_id": ti.run_id, "reason": reason, "forced_past": "; ".join(standing)}
        self.log.info("Asking for emergency approval of %s %s (%s): %s", ti.dag_id, ti.run_id, reason, standing)
        ti.xcom_push(key="outcome", value=f"the on-call lead and a director asked ({emergency.APPROVAL_DAG} run "
                                          f"{self.trigger_run_id})")
        return super().execute(context)

    @staticmethod
    def forced_past(policy, context) -> list[str]:
        """What the force reason would lift for this DAG's gates now."""
        from maintenance import clock
        from maintenance.calendar import MaintenanceCalendar
        from maintenance.gate.blockers import Facts, find_blockers
        from maintenance.gate.sensor import MaintenanceGateSensor

        calendar, facts = MaintenanceCalendar.from_policy(policy), Facts(now=clock.now())
        rules = {"max_affected_users": policy.decision.max_affected_users_outside_window,
                 "active_users_threshold": policy.decision.load.active_users_threshold}
        found = []
        for task in context["dag"].tasks:
            if isinstance(task, MaintenanceGateSensor):
                found += [b.reason for b in find_blockers(task.profile, facts, calendar, **rules) if b.forceable]
        return sorted(set(found))


class RecordEmergencyApprovalOperator(MaintenanceOperator):
    """A forced run's two answers, from the approval tasks (or their timeouts), into the ledger
    and to on-call and the stakeholders.

    :param roles: role (``oncall_lead``, ``director``) -> the human-in-the-loop task that asked it.
    """

    def __init__(self, *, roles: dict[str, str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.roles = dict(roles)

    def run(self, run) -> dict:
        from maintenance.change import emergency
        from maintenance.form import emergency_request
        from maintenance.ledger import notices
        from maintenance.notify import slack

        policy, params = run.policy, emergency_request(run.context)
        answers = {}
        for role, task_id in self.roles.items():
            decision, who, at = hitl_answer(run, task_id)
            notices.record_emergency(run.ledger.conn, run.ledger.schema_name, dag_id=params["dag_id"],
                                     run_id=params["run_id"], role=role, decision=decision, decided_by=who,
                                     decided_at=at, reason=params["reason"], approval_run_id=run.ti.run_id)
            answers[role] = {"role": role, "decision": decision, "decided_by": who, "decided_at": at}
        state, said = emergency.standing(answers, approval_run=run.ti.run_id, tz=policy.tz)
        text = (f"{':rotating_light:' if state == 'approved' else ':no_entry:'} {params['dag_id']} "
                f"{params['run_id']} (forced: {params['reason']}): {said}.")
        delivered = [slack.post(policy.connections.slack, channel, text)
                     for channel in dict.fromkeys([policy.notifications.oncall_channel,
                                                   policy.notifications.stakeholders_channel])]
        return {"dag_id": params["dag_id"], "run_id": params["run_id"], "state": state, "said": said,
                "answers": {r: {**a, "decided_at": a["decided_at"].isoformat()} for r, a in answers.items()},
                "delivered": all(delivered)}

    def describe(self, summary: dict) -> str:
        return f"{summary['dag_id']} {summary['run_id']}: {summary['said']}"
