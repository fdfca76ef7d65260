"""The run summary: what was done, skipped (and why) and failed, posted at the end."""

from __future__ import annotations

from collections import defaultdict

DONE, SKIPPED, FAILED = "success", "skipped", "failed"


def collect(context, summary_task_id: str) -> dict:
    """Task states of this run, with the gates' and the tasks' own reasons for skipping."""
    ti, run = context["ti"], context["dag_run"]
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[run.run_id]).get(run.run_id, {})
    groups: dict[str, list] = defaultdict(list)
    for task_id, raw_state in states.items():
        if task_id == summary_task_id:
            continue
        decision = ti.xcom_pull(task_ids=task_id, key="gate_decision")
        why = "; ".join(b["reason"] for b in decision["blockers"]) if decision and decision.get("blockers") else ""
        why = why or ti.xcom_pull(task_ids=task_id, key="outcome") or ""
        state = str(raw_state or "none")
        bucket = DONE if state == DONE else SKIPPED if state in (SKIPPED, "upstream_skipped") else (
            FAILED if state in (FAILED, "upstream_failed") else "other")
        groups[bucket].append({"task": task_id, "state": state, "why": why})
    return {"dag_id": ti.dag_id, "run_id": run.run_id, **{k: groups.get(k, []) for k in (DONE, SKIPPED, FAILED)},
            "other": groups.get("other", [])}


def render(summary: dict) -> str:
    icon = ":x:" if summary[FAILED] else ":white_check_mark:"
    lines = [f"{icon} *{summary['dag_id']}* run `{summary['run_id']}`: "
             f"{len(summary[DONE])} done, {len(summary[SKIPPED])} skipped, {len(summary[FAILED])} failed"]
    for key, label in ((FAILED, "Failed"), (SKIPPED, "Skipped"), (DONE, "Done")):
        for item in summary[key]:
            why = f" ({item['why']})" if item["why"] else ""
            lines.append(f"• {label}: `{item['task']}`{why}")
    return "\n".join(lines)


def explain_skips(summary: dict, upstream_of) -> None:
    """A skipped task without its own reason inherits the nearest reason above it: a gate's
    blockers, or a branch's choice (e.g. another weekday's theme)."""
    reasons = {i["task"]: i["why"] for key in (SKIPPED, DONE) for i in summary[key] if i["why"]}
    for item in summary[SKIPPED]:
        if item["why"]:
            continue
        seen, frontier = set(), list(upstream_of(item["task"]))
        while frontier:
            task_id = frontier.pop()
            if task_id in reasons:
                item["why"] = f"{task_id}: {reasons[task_id]}"
                break
            if task_id not in seen:
                seen.add(task_id)
                frontier.extend(upstream_of(task_id))
