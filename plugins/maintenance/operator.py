"""MaintenanceOperator: the thin shape every capability operator shares.

Subclasses implement ``run(run)`` (a :class:`maintenance.run.Run`: the policy, loaded once
per task, the form, the ledger and dry run, decided once) and return a summary
dict. The base resolves dry run from the trigger form, records the task run in
the ledger (start, outcome, summary), pushes the summary to XCom and a one-line
``outcome`` the run summary shows, and pages on-call when a critical task fails.
Engines stay plain functions over a connection; operators only wire them.
"""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowRescheduleException, AirflowSkipException

from maintenance.errors import InputError
from maintenance.notify.oncall import OnCallPager


class TryLater(AirflowRescheduleException):
    """The task waits (in reschedule mode, holding no worker slot) until ``reschedule_date``;
    ``reason`` says why, for the log and the ledger."""

    def __init__(self, reschedule_date, reason: str) -> None:
        super().__init__(reschedule_date)
        self.reason = reason


def permanent(exc: BaseException) -> bool:
    """An error a retry cannot fix: a constraint violated, an object missing, a permission
    refused, an unsupported statement, bad data. Connection loss, lock and statement timeouts, a
    server restart or a serialization failure are worth a retry (OperationalError and friends)."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is in the lock
        return False
    return isinstance(exc, psycopg.errors.IntegrityError | psycopg.errors.ProgrammingError
                      | psycopg.errors.NotSupportedError | psycopg.errors.DataError)


class MaintenanceOperator(BaseOperator):
    """The base of every capability operator; subclasses implement ``run(run)``.

    :param critical: critical work (backups, security) pages on-call when it fails, goes on
        despite a slip in the trigger form and keeps its records when the ledger is down;
        default: the class's ``critical``.
    """

    ui_color = "#bfdbfe"
    critical: bool = False

    def __init__(self, *, critical: bool | None = None, **kwargs: Any) -> None:
        if critical if critical is not None else self.critical:
            kwargs.setdefault("on_failure_callback", OnCallPager())
            kwargs.setdefault("priority_weight", 100)
            kwargs.setdefault("weight_rule", "absolute")
        super().__init__(**kwargs)
        self.critical = bool(critical if critical is not None else self.critical)

    def run(self, run) -> dict:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} must implement run()")

    def describe(self, summary: dict) -> str:
        """One line for the run summary; subclasses say what they did."""
        return ""

    def returns(self, summary: dict):
        """The task's return value: its summary, unless it hands on something else (a planning
        task's steps, for the mapped task that applies them; its summary then goes under the
        XCom key ``summary``)."""
        return summary

    def execute(self, context) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from maintenance.form import RunForm, refused
        from maintenance.ledger.runtime import open_ledger
        from maintenance.policy import load_policy
        from maintenance.run import Run

        policy = load_policy()
        try:
            form = RunForm.of(context)
        except InputError as exc:  # a field of the form the run cannot use: fail now, no retry
            if not self.critical:
                raise refused(context, exc) from exc
            self.log.warning("Critical work goes on despite the trigger form: %s", exc)
            form = RunForm.of(context, strict=False)
        dry_run = form.dry_run
        began = time.monotonic()
        self.log.info("%s: %s%s", self.task_id, "dry run (plans only) " if dry_run else "",
                      (self.__doc__ or type(self).__name__).strip().splitlines()[0])
        with open_ledger(context, policy, dry_run=dry_run, critical=self.critical) as ledger:
            for closed in ledger.start_task():
                self.log.warning("Closed as interrupted (killed, or its worker lost): %s", closed)
            try:
                summary = self.run(Run(context, policy, form, ledger, dry_run)) or {}
            except TryLater as exc:  # not a failure: the work waits for a later try
                ledger.finish_task("waiting", {"reason": exc.reason})
                raise
            except AirflowSkipException as exc:  # not a failure: final for this run, the summary says why
                ledger.finish_task("skipped", {"reason": str(exc)})
                context["ti"].xcom_push(key="outcome", value=str(exc)[:300])
                raise
            except Exception as exc:
                ledger.finish_task("failed", {"error": f"{type(exc).__name__}: {exc}"[:2000]})
                # The run summary says why, not only that it failed.
                context["ti"].xcom_push(key="outcome", value=f"{type(exc).__name__}: {exc}"[:300])
                if isinstance(exc, InputError) or permanent(exc):
                    raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc  # a retry would fail again
                raise
            summary = {"dry_run": dry_run, **summary}
            ledger.finish_task("planned" if dry_run else "done", summary)
            if not form.tables and ledger.conn is not None:  # a whole check, not narrowed to some tables
                closed = ledger.resolve_passed_findings()
                if closed:
                    self.log.info("%d finding(s) of earlier runs passed this time: resolved", closed)
        line = self.describe(summary)
        self.log.info("%s done in %.1fs%s", self.task_id, time.monotonic() - began, f": {line}" if line else "")
        if line or dry_run:
            context["ti"].xcom_push(key="outcome", value=("dry run: " if dry_run else "") + (line or "plan only"))
        value = self.returns(summary)
        if value is not summary:
            context["ti"].xcom_push(key="summary", value=summary)
        return value
