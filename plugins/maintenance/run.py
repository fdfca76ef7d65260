"""What one task's work is handed: the run's context, built once by the operator base.

The policy is loaded once per task, the form read once, dry run decided once; operator bodies
ask this object instead of loading, reading or deciding again.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from maintenance.form import RunForm
    from maintenance.ledger.store import Ledger
    from maintenance.policy.model import Policy


@dataclass(frozen=True)
class Run:
    """One task try's work. ``context``: Airflow's task context (for XCom, the task instance)."""

    context: Any
    policy: Policy
    form: RunForm
    ledger: Ledger
    dry_run: bool

    @property
    def ti(self):
        return self.context["ti"]

    @property
    def logical_date(self) -> datetime:
        """The date the run stands for (a run without one: when it was queued)."""
        from maintenance.clock import run_date

        return run_date(self.context)

    @property
    def run_type(self) -> str:
        """``manual``, ``scheduled``, ``backfill`` or ``asset_triggered``."""
        return self.form.run_type

    def applies(self, system: str, action: str) -> bool:
        """Does this run carry out ``action`` (declared in maintenance.actions), or only plan it?"""
        from maintenance.actions import kind

        return kind(system, action).changes and not self.dry_run

    @contextmanager
    def step(self, system: str, target: str, action: str, plan: dict | None = None, *,
             expected_seconds: float | None = None):
        """One step on a system: recorded in the ledger (maintenance.ledger.store.Ledger.action),
        and, when the action is declared ``silenced`` (disruptive) and Alertmanager is configured,
        with its system's alerts silenced while it runs: the silence made before, expired after,
        whatever happens. An Alertmanager that cannot be reached does not stop the step: it runs
        loud, and the ledger says why. After a disruptive step that succeeded, the watch: the
        policy's health queries for its system, read for a few minutes; a regression pages
        on-call naming the step (maintenance.monitoring.watch)."""
        from maintenance.actions import kind

        disruptive = kind(system, action).silenced and not self.dry_run
        with self.ledger.action(system, target, action, plan) as act:
            silence = None
            if disruptive and self.policy.monitoring.alertmanager_url:
                silence = self._silence(system, target, action, expected_seconds, act)
            try:
                yield act
            finally:
                if silence:
                    self._unsilence(silence, act)
            if disruptive and act.outcome in (None, "applied"):
                self._watch(system, target, action, act)

    def _watch(self, system, target, action, act) -> None:
        import logging

        from maintenance.monitoring import watch
        from maintenance.notify.pages import page_once
        from maintenance.security.http import ServiceUnavailable

        settings, base = self.policy.monitoring.watch, self.policy.monitoring.prometheus_url
        checks = settings.by_system.get(system, [])
        if not base or not checks or settings.minutes <= 0:
            return
        log = logging.getLogger(__name__)
        log.info("Watching %s for %g min after %s of %s: %s", system, settings.minutes, action, target,
                 ", ".join(c.name for c in checks))
        try:
            seen = watch.watch(base, checks, seconds=settings.minutes * 60, interval=settings.interval_seconds,
                               timeout=self.policy.monitoring.http_timeout_s)
        except ServiceUnavailable as exc:
            seen = {"rounds": 0, "breaches": {"prometheus": f"the watch could not ask Prometheus: {exc}"}, "last": []}
        act.plan = act.plan | {"watch": seen}
        for message in seen["breaches"].values():
            log.warning("After %s of %s: %s", action, target, message)
        page_once(self.ledger, self.policy, scope=f"watch:{system}:{target}", context=self.context,
                  title=f"Regression after {action} of {target}",
                  problems={name: f"after {action} of {target}: {message}"
                            for name, message in seen["breaches"].items()})

    def _silence(self, system, target, action, expected_seconds, act) -> str | None:
        import logging

        from maintenance import clock
        from maintenance.monitoring import silences
        from maintenance.security.http import ServiceUnavailable

        settings, am = self.policy.monitoring.silences, self.policy.monitoring.alertmanager_url
        labels = settings.by_system.get(system)
        if not labels:
            return None
        timeout = self.policy.monitoring.http_timeout_s
        try:
            self._expire_leftovers(am, target, action, timeout)
            seconds = (expected_seconds or settings.default_minutes * 60) + settings.margin_minutes * 60
            silence = silences.create(am, silences.matchers_for(labels, include_critical=settings.include_critical),
                                      now=clock.now(), seconds=seconds, timeout=timeout,
                                      comment=f"{target} {action} {silences.step_key(self.ledger.key)}")
        except ServiceUnavailable as exc:
            logging.getLogger(__name__).warning("No silence for %s %s: %s; the step runs with its alerts on",
                                                action, target, exc)
            act.plan = act.plan | {"silence_error": str(exc)[:300]}
            return None
        act.plan = act.plan | {"silence": silence, "silenced": labels, "silence_seconds": seconds}
        logging.getLogger(__name__).info("Silenced %s alerts %s for %s (silence %s, %.0f s at most)", system, labels,
                                         target, silence, seconds)
        return silence

    def _unsilence(self, silence: str, act) -> None:
        import logging

        from maintenance.monitoring import silences
        from maintenance.security.http import ServiceUnavailable

        try:
            silences.expire(self.policy.monitoring.alertmanager_url, silence,
                            timeout=self.policy.monitoring.http_timeout_s)
        except ServiceUnavailable as exc:  # it ends by itself at its end time; the next step expires it
            logging.getLogger(__name__).warning("Silence %s not expired: %s", silence, exc)
            act.plan = act.plan | {"silence_expire_error": str(exc)[:300]}
            return
        act.plan = act.plan | {"silence_expired": True}

    def _expire_leftovers(self, am: str, target: str, action: str, timeout: float) -> None:
        """Silences of earlier steps on this target whose task try the ledger shows over (it died
        before expiring them): expired now, so a crash never silences beyond its step."""
        from maintenance.ledger.store import task_try_over
        from maintenance.monitoring import silences

        if self.ledger.conn is None:  # a spooled ledger cannot tell: they end by themselves
            return
        for found in silences.ours_active(am, timeout=timeout):
            if found["target"] != f"{target} {action}":
                continue
            k = found["key"]
            if task_try_over(self.ledger.conn, self.ledger.schema_name, k["dag"], k["run"], k["task"], int(k["map"]),
                             int(k["try"])):
                silences.expire(am, found["id"], timeout=timeout)
