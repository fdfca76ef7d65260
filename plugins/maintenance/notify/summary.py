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


def collect(context, summary_task_id: str, run_url: str = "") -> dict:
    """Task states of this run, with the gates' and the tasks' own reasons for skipping or
    failing; each failed task links its log under ``run_url`` (the run in the Airflow UI)."""
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
        item = {"task": label, "state": state, "why": why}
        if bucket == FAILED and state == FAILED and run_url:
            item["log_url"] = f"{run_url}/tasks/{task_id}" + (f"/mapped/{map_index}" if map_index >= 0 else "")
        groups[bucket].append(item)
    return {"dag_id": ti.dag_id, "run_id": run.run_id, "run_url": run_url,
            **{k: groups.get(k, []) for k in (DONE, SKIPPED, FAILED)}, "other": groups.get("other", [])}


LABELS = ((FAILED, "Failed"), (SKIPPED, "Skipped"), (DONE, "Done"))


def _line(label: str, item: dict) -> str:
    why = f" ({item['why']})" if item["why"] else ""
    link = f" <{item['log_url']}|log>" if item.get("log_url") else ""
    return f"• {label}: `{item['task']}`{why}{link}"


def shown(summary: dict, key: str) -> list[dict]:
    """The items of ``key`` this run was for: tasks of branches the run did not take (another
    weekday's theme) are left out of the message."""
    return [i for i in summary[key] if not i.get("not_chosen")]


def headline(summary: dict) -> str:
    icon = ":x:" if summary[FAILED] else ":white_check_mark:"
    run = f"<{summary['run_url']}|{summary['run_id']}>" if summary.get("run_url") else f"`{summary['run_id']}`"
    line = (f"{icon} *{summary['dag_id']}* run {run}: {len(shown(summary, DONE))} done, "
            f"{len(shown(summary, SKIPPED))} skipped, {len(summary[FAILED])} failed")
    if summary.get("branch"):
        line += f" ({summary['branch']})"
    return line


def render(summary: dict) -> str:
    """The message as plain text (Slack's fallback, the task log)."""
    lines = [headline(summary)]
    for key, label in LABELS:
        lines += [_line(label, item) for item in shown(summary, key)]
    return "\n".join(lines)


def blocks(summary: dict, limit: int = 2900) -> list[dict]:
    """The message as Slack blocks: the headline, then one section per kind of outcome, failures
    first; a section cut at Slack's text limit says how many lines it left out."""
    out = [{"type": "section", "text": {"type": "mrkdwn", "text": headline(summary)[:limit]}}]
    for key, label in LABELS:
        lines = [_line(label, item) for item in shown(summary, key)]
        if not lines:
            continue
        text, kept = "", 0
        for line in lines:
            if len(text) + len(line) + 40 > limit:
                break
            text, kept = text + line + "\n", kept + 1
        if kept < len(lines):
            text += f"_…and {len(lines) - kept} more: see the run_"
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": text.rstrip()}})
    if summary.get("run_url"):
        out.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"<{summary['run_url']}|Open the run in Airflow>"}]})
    return out


def explain(summary: dict, upstream_of, is_branch=lambda task_id: False) -> None:
    """A skipped or failed task without its own reason inherits the nearest reason above it: a
    gate's blockers, a branch's choice (then it is marked ``not_chosen``: the run was not for
    it), or the failure of a task it needed."""
    reasons = {i["task"]: i["why"] for key in (SKIPPED, DONE, FAILED) for i in summary[key] if i["why"]}
    failed = {i["task"] for i in summary[FAILED] if i["state"] == FAILED}
    for item in summary[SKIPPED] + summary[FAILED]:
        if item["why"]:
            continue
        if item["state"] == FAILED:
            item["why"] = "no reason recorded: see its log"
            continue
        seen, frontier = set(), list(upstream_of(item["task"].split("[")[0]))
        while frontier:
            task_id = frontier.pop()
            if item["state"] == "upstream_failed" and task_id in failed:
                item["why"] = f"{task_id} failed"
                break
            if item["state"] != "upstream_failed" and task_id in reasons:
                item["why"] = f"{task_id}: {reasons[task_id]}"
                item["not_chosen"] = is_branch(task_id)
                break
            if task_id not in seen:
                seen.add(task_id)
                frontier.extend(upstream_of(task_id))
    for item in summary[FAILED]:  # every failure names a reason, if only where to look
        item["why"] = item["why"] or f"{item['state']}, no reason recorded: see its log"
