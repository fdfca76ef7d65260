"""The deadline alert: a run that has not finished by its deadline pages on-call.

Airflow 3 evaluates the deadline (the run's queue time plus the DAG's allowance) in the
scheduler and awaits this callback in the triggerer.
"""

from __future__ import annotations

import asyncio


def deadline_text(*, dag_id: str, promise: str, run_id: str | None = None) -> str:
    return (f":alarm_clock: *Maintenance deadline missed*: `{dag_id}`"
            + (f" run `{run_id}`" if run_id else "") + f" is not finished: {promise}.\n"
            "Open the run in the Airflow UI: a task may be waiting (pool, gate) or stuck.")


async def deadline_missed(*, dag_id: str, promise: str, context: dict | None = None, **_: object) -> bool:
    from maintenance.notify import slack
    from maintenance.policy import load_policy

    policy = load_policy()
    run = (context or {}).get("dag_run") or {}
    run_id = run.get("run_id") if isinstance(run, dict) else getattr(run, "run_id", None)
    text = deadline_text(dag_id=dag_id, promise=promise, run_id=run_id)
    return await asyncio.to_thread(slack.post, policy.connections.slack, policy.notifications.oncall_channel, text)
