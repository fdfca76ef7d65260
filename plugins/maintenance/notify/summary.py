"""The run summary: what was done, skipped (and why) and failed, posted at the end."""

from __future__ import annotations

from collections import defaultdict

DONE, SKIPPED, FAILED = "success", "skipped", "failed"


def task_and_index(name: str, task_ids) -> tuple[str, int]:
    """Airflow names an instance of a mapped task ``<task_id>_<map_index>`` among the run's
    states; any other task has map index -1."""
    head, _, index = name.rpartition("_")
    if name not in task_ids and head in task_ids and index.isdigit():
        return head, int(index)
    return name, -1


def collect(context, summary_task_id: str) -> dict:
    """Task states of this run, with the gates' and the tasks' own reasons for skipping."""
    ti, run = context["ti"], context["dag_run"]
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[run.run_id]).get(run.run_id, {})
    task_ids = set(context["dag"].task_dict)
    groups: dict[str, list] = defaultdict(list)
    instances = sorted((task_and_index(name, task_ids), raw_state) for name, raw_state in states.items()
                       if name != summary_task_id)
    for (task_id, map_index), raw_state in instances:
        where = {"task_ids": task_id} | ({"map_indexes": map_index} if map_index >= 0 else {})
        decision = ti.xcom_pull(key="gate_decision", **where)
        why = "; ".join(b["reason"] for b in decision["blockers"]) if decision and decision.get("blockers") else ""
        why = why or ti.xcom_pull(key="outcome", **where) or ""
        state = str(raw_state or "none")
        bucket = DONE if state == DONE else SKIPPED if state in (SKIPPED, "upstream_skipped") else (
            FAILED if state in (FAILED, "upstream_failed") else "other")
        label = task_id if map_index < 0 else f"{task_id}[{map_index}]"
        groups[bucket].append({"task": label, "state": state, "why": why})
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
