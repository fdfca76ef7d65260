"""MaintenanceGateSensor: the one gate in front of non-critical maintenance work.

It looks at the policy's calendar, the manual freeze switch and the platform's
load. A blackout, freeze or missing window *skips* the work behind it (skipped,
never failed); load makes it *wait* in reschedule mode, holding no worker slot,
and after the policy's limit the work is skipped for this run. Critical work
(backups, security) is not placed behind the gate. Every decision and its
reasons go to the task log and to XCom (key ``gate_decision``).

A run forced past a blackout, freeze or the window is emergency maintenance: the
gate then waits (rescheduled every ``emergency.recheck_seconds``) for the on-call
lead's and a director's approvals in the ledger (maintenance.change.emergency),
and skips the work when either says no, or when nobody could be asked.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowSkipException

from maintenance import clock
from maintenance.gate.blockers import Facts, TaskProfile, decide, find_blockers

_OFF = {"", "false", "off", "0", "no", "none"}


class MaintenanceGateSensor(BaseSensorOperator):
    """The shared gate in front of non-critical work (see maintenance.gate.blockers).

    :param zero_downtime: the work behind it blocks nobody; False: it waits for the planned window
        when it affects more users than the policy's ``decision.max_affected_users_outside_window``.
    :param affected_users: how many users the work behind it can affect.
    :param recheck_after_seconds: under load, look again after this long (reschedule mode).
    :param give_up_after_seconds: under load for this long since the first look: skip the run's work.
    """

    ui_color = "#fde68a"

    def __init__(self, *, zero_downtime: bool = True, affected_users: int = 0,
                 recheck_after_seconds: float = 7200, give_up_after_seconds: float = 28800,
                 **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("soft_fail", True)  # giving up under load skips the work, it is not a failure
        super().__init__(poke_interval=recheck_after_seconds, timeout=give_up_after_seconds, **kwargs)
        self.profile = TaskProfile(critical=False, zero_downtime=zero_downtime, affected_users=affected_users)
        self._next_poke_s: float | None = None

    def execute(self, context):
        # Checked before the poke loop: soft_fail would turn this failure into a skip.
        from maintenance.errors import InputError
        from maintenance.form import RunForm, refused

        try:
            RunForm.of(context)
        except InputError as exc:
            raise refused(context, exc) from exc
        return super().execute(context)

    def poke(self, context) -> PokeReturnValue | bool:
        from maintenance.calendar import MaintenanceCalendar
        from maintenance.form import RunForm
        from maintenance.policy import load_policy

        policy = load_policy()
        calendar = MaintenanceCalendar.from_policy(policy)
        form = RunForm.of(context)
        rules = {"max_affected_users": policy.decision.max_affected_users_outside_window,
                 "active_users_threshold": policy.decision.load.active_users_threshold,
                 "catch_up_after": timedelta(minutes=policy.decision.catch_up_after_minutes)}

        facts = Facts(now=clock.now(), manual_freeze=self._manual_freeze(policy),
                      **self._schedule(context) if form.scheduled else {})
        if form.scheduled and not self.profile.zero_downtime and calendar.window_at(facts.now) is not None:
            facts = replace(facts, notice_missing=self._notice_missing(policy, calendar.window_at(facts.now)))
        decision = decide(find_blockers(self.profile, facts, calendar, **rules), form.force_reason)
        if decision.outcome == "proceed":
            # Only measure load, and ask for alerts, when nothing else already stops the work.
            facts = replace(facts, active_users=self._active_users(policy), **self._alerts(policy))
            decision = decide(find_blockers(self.profile, facts, calendar, **rules), form.force_reason)

        record = decision.as_dict() | {"checked_at": facts.now.isoformat(), "active_users": facts.active_users}
        self._next_poke_s = None
        if decision.outcome == "proceed" and decision.lifted and policy.emergency.approval:
            state, said = self._emergency(policy, context)
            record["emergency"] = {"state": state, "said": said}
            if state != "approved":
                context["ti"].xcom_push(key="gate_decision", value=record)
                self.log.info("Gate: forced past %s; %s", ", ".join(b.kind for b in decision.lifted), said)
                if state == "refused":
                    raise AirflowSkipException("maintenance gate: " + said)
                self._next_poke_s = policy.emergency.recheck_seconds  # people answer in minutes, not hours
                return False
            self.log.warning("Gate: %s", said)
        context["ti"].xcom_push(key="gate_decision", value=record)
        for lifted in decision.lifted:
            self.log.warning("Forced past %s: %s (reason given: %s)", lifted.kind, lifted.reason, form.force_reason)
        if decision.outcome == "skip":
            self.log.info("Gate: skip. %s", "; ".join(decision.reasons))
            raise AirflowSkipException("maintenance gate: " + "; ".join(decision.reasons))
        if decision.outcome == "wait":
            self.log.info("Gate: wait, rechecking in %ss, giving up after %ss. %s",
                          self.poke_interval, self.timeout, "; ".join(decision.reasons))
            return False
        self.log.info("Gate: proceed (active users: %s)", facts.active_users)
        return PokeReturnValue(is_done=True, xcom_value=record)

    def _get_next_poke_interval(self, started_at, run_duration, poke_count) -> float:
        return self._next_poke_s or super()._get_next_poke_interval(started_at, run_duration, poke_count)

    @staticmethod
    def _emergency(policy, context) -> tuple[str, str]:
        """Forced work's two approvals (maintenance.change.emergency): approved, refused or pending."""
        from maintenance.change import emergency
        from maintenance.ledger import notices
        from maintenance.ledger.runtime import ledger_connection

        ti = context["ti"]
        run = emergency.approval_run_id(ti.dag_id, ti.run_id)
        try:
            with ledger_connection(policy) as conn:
                approvals = notices.emergency_for(conn, policy.ledger.schema_name, ti.dag_id, ti.run_id)
        except Exception as exc:  # nobody can say it was approved
            return "pending", f"cannot read the emergency approvals (the ledger: {type(exc).__name__}: {exc})"[:300]
        state, said = emergency.standing(approvals, approval_run=run, tz=policy.tz)
        if state == "pending":
            # Nobody is being asked when the request did not go out: say so instead of waiting.
            asked = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
            request = str(asked.get(emergency.REQUEST_TASK) or "")
            if request in ("failed", "upstream_failed"):
                return "refused", ("emergency maintenance not approved: nobody could be asked "
                                   f"({emergency.REQUEST_TASK} failed: is {emergency.APPROVAL_DAG} paused? its log "
                                   "says)")
            if request == "skipped":
                return "refused", (f"emergency maintenance not approved: nobody was asked ({emergency.REQUEST_TASK} "
                                   "found nothing to force past when the run started); trigger a new forced run")
        return state, said

    @staticmethod
    def _schedule(context) -> dict:
        """When a scheduled run was due and when it started, for the catch-up blocker (the task
        SDK's run has no queue time; a scheduled run starts as soon as it is queued)."""
        started = context["dag_run"].start_date
        return {"scheduled_for": clock.run_date(context), "queued_at": clock.plain(started)} if started else {}

    @staticmethod
    def _notice_missing(policy, window) -> str | None:
        """Why this window's notice or approval does not let its scheduled disruptive work run, or
        None (procedures 1.1: seven days' notice, then the Change Advisory Board's approval)."""
        from maintenance.change.notice import not_cleared
        from maintenance.ledger import notices
        from maintenance.ledger.runtime import ledger_connection

        try:
            with ledger_connection(policy) as conn:
                sent = notices.sent_for(conn, policy.ledger.schema_name, window.start)
                approval = notices.approval_for(conn, policy.ledger.schema_name, window.start)
        except Exception as exc:  # nobody can say the stakeholders were told
            return f"cannot tell whether the window's notice went out (the ledger: {type(exc).__name__}: {exc})"[:300]
        return not_cleared(policy, window, sent, approval)

    @staticmethod
    def _manual_freeze(policy) -> str | None:
        from airflow.sdk import Variable

        value = Variable.get(policy.decision.freeze_variable, default=None)
        return None if value is None or str(value).strip().lower() in _OFF else str(value).strip()

    def _alerts(self, policy) -> dict:
        """For disruptive work, when the policy names Alertmanager and alerts to wait for."""
        monitoring = policy.monitoring
        if self.profile.zero_downtime or not monitoring.alertmanager_url or not monitoring.gate_on_alerts:
            return {}
        from maintenance.monitoring.firing import firing
        from maintenance.security.http import ServiceUnavailable

        try:
            return {"firing_alerts": tuple(firing(monitoring.alertmanager_url, monitoring.gate_on_alerts,
                                                  timeout=monitoring.http_timeout_s))}
        except ServiceUnavailable as exc:
            return {"alerts_unknown": str(exc)[:300]}

    @staticmethod
    def _active_users(policy) -> int:
        from maintenance.probes import active_users

        return active_users(policy.decision.load.probe)
