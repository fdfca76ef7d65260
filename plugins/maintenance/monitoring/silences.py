"""Maintenance silences itself, and only itself (procedures 6.1, "monitoring: enhanced").

A disruptive step creates an Alertmanager silence for the alerts the policy maps to its system
(``monitoring.silences.by_system``), for the step's expected duration plus a margin, and expires
it when the step ends, whatever the outcome. Critical alerts stay loud unless the policy says
otherwise: the silence carries ``severity!="critical"``. A step that dies leaves a silence that
ends by itself; the next step on the same target expires it once the ledger shows its task try
over. Every silence names its maker in ``createdBy`` and its step in the comment.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from maintenance.security.http import ServiceUnavailable, get_json

CREATED_BY = "pathfinity-maintenance"
# The comment ends with the step's key, so a later step can tell whose silence it is.
_KEY = re.compile(r"\[(?P<dag>[^ \]]+) (?P<run>[^ \]]+) (?P<task>[^ \]]+) (?P<map>-?\d+) try (?P<try>\d+)\]$")


def matchers_for(labels: dict[str, str], *, include_critical: bool) -> list[dict]:
    found = [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in sorted(labels.items())]
    if not include_critical:
        found.append({"name": "severity", "value": "critical", "isRegex": False, "isEqual": False})
    return found


def step_key(key) -> str:
    return f"[{key.dag_id} {key.run_id} {key.task_id} {key.map_index} try {key.try_number}]"


def create(base: str, matchers: list[dict], *, now: datetime, seconds: float, comment: str, timeout: float) -> str:
    body = {"matchers": matchers, "startsAt": now.isoformat(), "endsAt": (now + timedelta(seconds=seconds)).isoformat(),
            "createdBy": CREATED_BY, "comment": comment}
    answer = get_json(f"{base.rstrip('/')}/api/v2/silences", timeout=timeout, body=body)
    if not answer or "silenceID" not in answer:
        raise ServiceUnavailable(f"{base}/api/v2/silences: no silence id in {answer!r}")
    return answer["silenceID"]


def expire(base: str, silence_id: str, *, timeout: float) -> None:
    """Expire a silence; one already gone or expired is fine."""
    get_json(f"{base.rstrip('/')}/api/v2/silence/{silence_id}", timeout=timeout, method="DELETE")


def ours_active(base: str, *, timeout: float) -> list[dict]:
    """Active silences this project made: id, comment, the step's key (dag, run, task, map, try)."""
    answer = get_json(f"{base.rstrip('/')}/api/v2/silences", timeout=timeout) or []
    found = []
    for s in answer:
        match = _KEY.search(s.get("comment", ""))
        if s.get("createdBy") == CREATED_BY and s.get("status", {}).get("state") == "active" and match:
            found.append({"id": s["id"], "comment": s["comment"], "key": match.groupdict(),
                          "target": s["comment"].split(" [", 1)[0]})
    return found
