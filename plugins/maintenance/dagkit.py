"""What every maintenance DAG shares: schedule, defaults, trigger form, docs, gate.

DAG files stay wiring only and call these. Nothing here touches a database or
the network: the policy is a local file, read once per parse.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from airflow.sdk import CronTriggerTimetable, Param

from maintenance import form
from maintenance.change.emergency import REQUEST_TASK as EMERGENCY_TASK
from maintenance.policy import load_policy

log = logging.getLogger(__name__)

OWNER = "platform-ops"
OPERATIONS_DOC = "docs/operations.md"


def policy():
    return load_policy()


def timetable(cron: str) -> CronTriggerTimetable:
    return CronTriggerTimetable(cron, timezone=policy().timezone)


def default_args(**extra) -> dict:
    # The retry delay is Airflow's [core] default_task_retry_delay (300 s unless configured),
    # doubled on each try.
    return {"owner": OWNER, "retries": 2, "retry_exponential_backoff": 2.0, **extra}


def trigger_form(*, destructive: bool, **extra: Param) -> dict[str, Param]:
    """The trigger form on-call sees: dry run, force past a blackout with a reason (maintenance.form)."""
    return form.fields(destructive=destructive, **extra)




def gate(task_id: str = "gate", *, zero_downtime: bool = True, affected_users: int = 0, **kwargs):
    """The shared gate in front of non-critical work. The DAG's first gate also brings the task
    that asks for a forced run's emergency approvals, which every gate of the run waits for."""
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    from maintenance.gate.sensor import MaintenanceGateSensor

    dag = DagContext.get_current()
    if dag is not None and not dag.has_task(EMERGENCY_TASK):
        from maintenance.change.operators import EmergencyApprovalRequestOperator

        # In the DAG's root group even when the gate is in a task group: one per DAG.
        EmergencyApprovalRequestOperator(task_id=EMERGENCY_TASK, task_group=dag.task_group)
        _summary_after_emergency(dag)
    load = policy().decision.load
    return MaintenanceGateSensor(
        task_id=task_id, zero_downtime=zero_downtime, affected_users=affected_users,
        recheck_after_seconds=load.recheck_after.total_seconds(),
        give_up_after_seconds=load.give_up_after.total_seconds(),
        doc_md="The maintenance gate: skips the work behind it in a blackout or freeze, waits "
               "(no worker slot held) while the platform is under load.", **kwargs)


def _summary_after_emergency(dag, summary_task: str = "run_summary") -> None:
    """The run summary counts the emergency approval request (a paused approval DAG fails it)."""
    if dag.has_task(EMERGENCY_TASK) and dag.has_task(summary_task):
        dag.get_task(EMERGENCY_TASK) >> dag.get_task(summary_task)


def wait_until(task_id: str, hour: int, minute: int = 0):
    """Wait, deferred, until a local time of day (scheduled runs only; see WaitUntilLocalTime)."""
    from maintenance.timing import WaitUntilLocalTime

    return WaitUntilLocalTime(task_id=task_id, hour=hour, minute=minute, timezone=policy().timezone,
                              doc_md=f"Waits, deferred, until {hour:02d}:{minute:02d} local time.")


def policy_doc(title: str, body: str) -> str:
    """The DAG's doc_md: its purpose, then the policy in force. Nothing in it depends on the clock:
    a DAG whose doc said "now" would change version every time a blackout began or ended. What
    holds at a given moment is in each gate's log and the run summary."""
    pol = policy()
    window = pol.planned_window
    blackouts = [f"{b.name} {b.start}..{b.end}" + (f" ({b.reason})" if b.reason else "")
                 for b in pol.blackouts]
    freezes = [f"{f.name} {f.start}..{f.end}" + (f" ({f.reason})" if f.reason else "") for f in pol.freezes]
    nth = "last" if window.week_of_month == -1 else f"#{window.week_of_month}"
    lines = [
        f"# {title}", "", body.strip(), "",
        "## Policy in force",
        f"- Timezone: `{pol.timezone}` (daylight saving applies: EST in winter, EDT in summer).",
        f"- Planned window: {window.weekday} {nth} of the month, {window.start:%H:%M}-{window.end:%H:%M}"
        + (", or the first such day after it outside every blackout and freeze" if window.placement == "first_clear"
           else "") + (f"; explicit dates {', '.join(map(str, window.dates))}" if window.dates else "") + ".",
        "- Blackouts, every year (both days included): " + ("; ".join(blackouts) if blackouts else "none") + ".",
        "- One-off freezes: " + ("; ".join(freezes) if freezes else "none") + ".",
        f"- Load: non-critical work waits while active users exceed "
        f"{pol.decision.load.active_users_threshold:,}, rechecking every "
        f"{pol.decision.load.recheck_after_minutes:g} min, skipped after "
        f"{pol.decision.load.give_up_after_minutes:g} min.",
        f"- Manual freeze switch: Airflow Variable `{pol.decision.freeze_variable}`.",
        "- Whether a blackout or the window holds for a run: its gate's log and the run summary.",
        "", f"On-call guide: `{OPERATIONS_DOC}`. Policy reference: `docs/policy.md`.",
    ]
    return "\n".join(lines)


def run_summary(task_id: str = "run_summary"):
    """The last task of every DAG: post what was done, skipped and failed, whatever happened.

    It runs after everything (trigger rule ``all_done``) and then fails itself when any
    task failed, so the run still shows as failed in the UI.
    """
    from airflow.sdk import task

    @task(task_id=task_id, trigger_rule="all_done", retries=0,
          doc_md="Posts the run summary to Slack; fails when any task of the run failed.")
    def summarize(**context):
        from airflow.sdk import BaseBranchOperator
        from airflow.sdk.exceptions import AirflowFailException

        from maintenance.notify import slack, summary

        pol = policy()
        run = context["dag_run"]
        result = summary.collect(context, task_id, pol.notifications.run_url(run.dag_id, run.run_id))
        dag = context["dag"]

        def upstream_of(t):
            return dag.get_task(t).upstream_task_ids if t in dag.task_dict else []

        def is_branch(t):
            return t in dag.task_dict and isinstance(dag.get_task(t), BaseBranchOperator)

        summary.explain(result, upstream_of, is_branch)
        for item in result[summary.SKIPPED]:  # no emergency approval needed: not news
            item["not_chosen"] = item.get("not_chosen") or item["task"] == EMERGENCY_TASK
        branches = [i["why"] for i in result[summary.DONE] if is_branch(i["task"]) and i["why"]]
        result["branch"] = "; ".join(branches)
        text = summary.render(result)
        for line in text.splitlines():
            log.info("%s", line)
        result["delivered"] = slack.post(pol.connections.slack, pol.notifications.summary_channel, text,
                                         blocks=summary.blocks(result))
        context["ti"].xcom_push(key="summary", value=result)
        if result[summary.FAILED]:
            raise AirflowFailException(
                "failed in this run: " + ", ".join(i["task"] for i in result[summary.FAILED]))
        return result

    made = summarize()
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    dag = DagContext.get_current()
    if dag is not None:
        _summary_after_emergency(dag, task_id)
    return made


def weekly_theme_branch(built: dict[str, list[str]], task_id: str = "choose_theme"):
    """Branch to the tasks of the run's weekday theme (or the one the trigger form names)."""
    from airflow.providers.standard.operators.python import BranchPythonOperator

    def choose(**context):
        from zoneinfo import ZoneInfo

        from maintenance.clock import run_date
        from maintenance.form import RunForm

        asked = RunForm.of(context).theme

        day = asked if asked != "auto" else run_date(context).astimezone(
            ZoneInfo(policy().timezone)).strftime("%A").lower()
        context["ti"].xcom_push(key="outcome", value=f"theme: {day}")
        tasks = built.get(day, [])
        if not tasks:
            log.info("No task is built for %s's theme yet (see README, 'Not yet built')", day)
        return tasks

    return BranchPythonOperator(task_id=task_id, python_callable=choose,
                                doc_md="Picks the weekday's theme of the procedures (2.2).")


def months_run_day(dag, task_id: str = "months_run_day"):
    """Put ahead of every task of ``dag`` a check that a scheduled run (or a backfill's) falls on
    the month's run day: the day of its planned window, placed around blackouts (or, in a month
    left without one, the nominal day, when the reviews and the report still run). The DAG is
    due on every candidate day; on the others this ends the run at once, every task skipped,
    saying which day is the month's. A run triggered by a person always goes ahead."""
    from airflow.providers.standard.operators.python import ShortCircuitOperator

    def on_the_day(**context) -> bool:
        from maintenance.calendar import MaintenanceCalendar
        from maintenance.clock import run_date
        from maintenance.form import run_type_of
        from maintenance.policy import load_policy

        pol = load_policy()
        day = run_date(context).astimezone(pol.tz).date()
        calendar = MaintenanceCalendar.from_policy(pol)
        planned = calendar.monthly_run_day(day.year, day.month)
        window = calendar.window_in(day.year, day.month)
        what = f"the planned window, {window.describe(pol.tz)}" if window else \
            f"no usable window this month (blackouts or freezes cover every candidate day): the reviews run {planned}"
        if run_type_of(context) == "manual" or day == planned:
            context["ti"].xcom_push(key="outcome", value=f"the month's run: {what}")
            return True
        context["ti"].xcom_push(key="outcome", value=f"not the month's run day ({day}); this month's is {planned}: "
                                                     f"{what}")
        log.info("Not the month's run day (%s): this month's is %s (%s)", day, planned, what)
        return False

    check = ShortCircuitOperator(task_id=task_id, python_callable=on_the_day, ignore_downstream_trigger_rules=True,
                                 doc_md="Ends a scheduled run at once unless it falls on the month's run day (the "
                                        "planned window's, placed around blackouts).")
    for root in [t for t in dag.roots if t is not check]:
        check >> root
    return check


def request_window_approval(task_id: str = "request_approval", notice_task: str = "window_notice"):
    """Trigger the window's approval run (``maintenance_window_approval``), once per window: its
    run id comes from the notice task. A paused approval DAG fails this task, loudly: the board
    would never be asked."""
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    def pulled(key: str) -> str:
        return "{{ (ti.xcom_pull(task_ids='" + notice_task + "') or {}).get('" + key + "', '') }}"

    return TriggerDagRunOperator(
        task_id=task_id, trigger_dag_id="maintenance_window_approval", trigger_run_id=pulled("approval_run_id"),
        conf={"window_start": pulled("window_start"), "notice": pulled("text")},
        skip_when_already_exists=True, fail_when_dag_is_paused=True,
        doc_md="Asks the Change Advisory Board to approve the window (maintenance_window_approval).")


theme_param, drill_param, tables_param = form.theme_field, form.drill_field, form.tables_field
archive_as_of_param = form.archive_as_of_field
WEEKLY_THEMES = form.WEEKLY_THEMES


def per_database(make, task_id: str, *, pooled: bool = True, **kwargs) -> list:
    """One ``make`` task per PostgreSQL database of the policy, each in that database's pool
    (``pooled=False`` for work that puts no load on the database)."""
    databases = policy().postgres.databases
    return [make(task_id=task_id if len(databases) == 1 else f"{task_id}_{db.conn_id}", conn_id=db.conn_id,
                 **({"pool": db.pool_name} if pooled else {}), **kwargs) for db in databases]


class PlannedWork(NamedTuple):
    plans: list  # one planning task per database
    steps: list  # its steps, a mapped task per database


def per_table(make, task_id: str, **plan_kwargs) -> PlannedWork:
    """Per database: ``plan_<task_id>`` plans (``make``, a planning operator, given
    ``plan_kwargs``) and ``<task_id>`` applies each planned step as one instance of a mapped
    task, named after its table or index, or its batch of cheap tables (the policy's
    ``postgres.batching``). Both run in the database's pool, so its slots cap how much
    maintenance one database takes at a time; each heavy step has its own log, retries and
    state in the grid."""
    from maintenance.postgres.operators import PostgresStepOperator

    databases = policy().postgres.databases
    plans, steps = [], []
    for db in databases:
        name = task_id if len(databases) == 1 else f"{task_id}_{db.conn_id}"
        plan = make(task_id=f"plan_{name}", conn_id=db.conn_id, pool=db.pool_name, **plan_kwargs)
        plans.append(plan)
        steps.append(PostgresStepOperator.partial(
            task_id=name, conn_id=db.conn_id, pool=db.pool_name, map_index_template="{{ task.step['label'] }}",
            doc_md=f"Applies the steps `plan_{name}` planned: one task instance per heavy table or index, "
                   "cheap ones (ANALYZE, small VACUUMs) in batches.",
        ).expand(step=plan.output))
    return PlannedWork(plans, steps)


def pool_for(conn_id: str) -> dict:
    """``pool=`` for work that loads the database behind ``conn_id``, when the policy pools it."""
    known = {d.conn_id for d in policy().postgres.databases}
    return {"pool": policy().postgres.database(conn_id).pool_name} if conn_id in known else {}


# The pools of the systems with one target each (a database's pool is named by the policy).
REDIS_POOL, NODES_POOL = "redis_platform", "kubernetes_nodes"


def required_pools() -> dict[str, dict]:
    """The Airflow pools the DAGs use: one per PostgreSQL database, one for Redis, one for
    Kubernetes node work (one slot each, so heavy work never overlaps on one system).
    Create them with `airflow pools import`."""
    pools = {db.pool_name: {"slots": 1, "description": f"maintenance load on {db.conn_id}",
                            "include_deferred": False} for db in policy().postgres.databases}
    pools[REDIS_POOL] = {"slots": 1, "description": "maintenance load on the cache", "include_deferred": False}
    pools[NODES_POOL] = {"slots": 1, "description": "node maintenance: one node at a time", "include_deferred": False}
    return pools


def deadline(dag_id: str, hours: float, promise: str):
    """A deadline alert: the run not finished ``hours`` after it was queued pages on-call.

    Counted from the queue time, not the logical date, so a backfill of past dates does not
    page for deadlines long gone."""
    from datetime import timedelta

    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(hours=hours),
                         callback=AsyncCallback("maintenance.notify.deadline.deadline_missed",
                                                kwargs={"dag_id": dag_id, "promise": promise}),
                         name=f"{dag_id} within {hours:g} h")


def maintenance_dag(dag_id: str, *, cron: str, title: str, doc: str, destructive: bool, tags: list[str],
                    deadline_hours: float | None = None, deadline_promise: str = "", **form: Param):
    """A maintenance DAG with the house rules: explicit timetable in the policy's zone, no catchup,
    one run at a time, owner and retries, the trigger form, the policy in its docs, and a
    deadline alert when the DAG promises to finish within ``deadline_hours``."""
    from datetime import datetime

    from airflow.sdk import DAG

    return DAG(
        dag_id=dag_id,
        deadline=deadline(dag_id, deadline_hours, deadline_promise) if deadline_hours else None,
        schedule=timetable(cron),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        default_args=default_args(),
        params=trigger_form(destructive=destructive, **form),
        tags=["maintenance", *tags],
        doc_md=policy_doc(title, doc),
    )
