"""The on-call page for a failed critical task: one message, the facts to act on."""

from __future__ import annotations

from airflow.sdk import BaseNotifier


def page_text(*, dag_id: str, task_id: str, run_id: str, try_number: int, reason: str, log_url: str) -> str:
    return (
        f":rotating_light: *Critical maintenance task failed*: `{dag_id}.{task_id}`\n"
        f"*Run:* {run_id}  *Try:* {try_number}\n"
        f"*Reason:* {reason}\n"
        f"*Log:* {log_url}"
    )


class OnCallPager(BaseNotifier):
    """``on_failure_callback`` for critical tasks: pages the policy's on-call channel."""

    def notify(self, context) -> None:
        from maintenance.notify.slack import post
        from maintenance.policy import load_policy

        policy = load_policy()
        ti = context["ti"]
        error = context.get("exception")
        reason = f"{type(error).__name__}: {error}" if error else "failed (no exception recorded)"
        log_url = getattr(ti, "log_url", None) or (
            f"{policy.notifications.base_url}/dags/{ti.dag_id}/runs/{ti.run_id}/tasks/{ti.task_id}")
        text = page_text(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id,
                         try_number=ti.try_number, reason=reason[:500], log_url=log_url)
        post(policy.connections.slack, policy.notifications.oncall_channel, text)
