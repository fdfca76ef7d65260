"""The watch after a disruptive step (procedures 6.1, "monitoring: enhanced").

For a few minutes after the step, the policy's health queries for its system are asked of
Prometheus every interval; a value past its limit is a regression, and on-call is paged naming
the step. The step itself is done by then: the watch does not undo it, it tells someone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote

from maintenance.security.http import ServiceUnavailable, get_json


@dataclass(frozen=True)
class Reading:
    name: str
    query: str
    value: float | None
    limit: str  # "> 0.9", "< 1"
    breached: bool


def read(base: str, checks, *, timeout: float) -> list[Reading]:
    """Each check's value now (the largest when the query returns several series; None: no data)."""
    readings = []
    for check in checks:
        answer = get_json(f"{base.rstrip('/')}/api/v1/query?query={quote(check.query)}", timeout=timeout)
        if not answer or answer.get("status") != "success":
            raise ServiceUnavailable(f"{base}/api/v1/query: {answer and answer.get('error')}")
        values = [float(r["value"][1]) for r in answer["data"]["result"]]
        value = (max(values) if check.above is not None else min(values)) if values else None
        breached = value is not None and ((check.above is not None and value > check.above)
                                          or (check.below is not None and value < check.below))
        limit = f"> {check.above:g}" if check.above is not None else f"< {check.below:g}"
        readings.append(Reading(check.name, check.query, value, limit, breached))
    return readings


def watch(base: str, checks, *, seconds: float, interval: float, timeout: float, sleep=time.sleep,
          monotonic=time.monotonic) -> dict:
    """Read the checks every ``interval`` for ``seconds``; each check's worst reading, and the
    breaches (check name -> what was seen)."""
    deadline, rounds, breaches, last = monotonic() + seconds, 0, {}, []
    while True:
        last = read(base, checks, timeout=timeout)
        rounds += 1
        for r in last:
            if r.breached and r.name not in breaches:
                breaches[r.name] = f"{r.name}: {r.value:g} (limit {r.limit}; {r.query})"
        if monotonic() >= deadline:
            break
        sleep(min(interval, max(0.0, deadline - monotonic())))
    return {"rounds": rounds, "breaches": breaches,
            "last": [{"name": r.name, "value": r.value, "limit": r.limit} for r in last]}
