"""kured's reboots governed by the maintenance calendar.

kured (the Kubernetes reboot daemon) reboots a node only while it holds the lock it keeps as an
annotation on its own DaemonSet (``weave.works/kured-node-lock``); an operator pauses reboots
cluster-wide by setting that annotation (kured's documented way). This project holds the lock
outside the planned window and in every blackout and freeze, and releases it for the window, so
kured reboots nodes only when this calendar allows. The lock is taken and released with the
DaemonSet's resourceVersion (a concurrent change by kured is a conflict, never overwritten); a
lock a node holds (a reboot under way) is never taken or released: it is kured's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

LOCK_ANNOTATION = "weave.works/kured-node-lock"
HOLDER = "pathfinity-maintenance"


@dataclass(frozen=True)
class LockPlan:
    want: str  # "hold" or "release"
    why: str
    holder: str | None  # who holds it now (None: free)
    change: bool  # does reaching ``want`` change the annotation?
    blocked: str | None = None  # why it cannot be reached now (a node holds it)

    def as_dict(self) -> dict:
        return {"want": self.want, "why": self.why, "holder": self.holder, "change": self.change,
                "blocked": self.blocked}


def wanted(calendar, now: datetime) -> tuple[str, str]:
    """``release`` in a planned window that no blackout or freeze covers; ``hold`` otherwise."""
    tz = calendar.tz
    window = calendar.window_at(now)
    if window is None:
        upcoming = calendar.next_window(now)
        return "hold", "outside the planned window" + (f" (next: {upcoming.describe(tz)})" if upcoming else "")
    blocking = calendar.blocking(window)
    if blocking:
        return "hold", f"the window is covered by {blocking[0].describe(tz)}"
    return "release", f"in the planned {window.describe(tz)}"


def holder_of(daemonset) -> str | None:
    raw = (daemonset.metadata.annotations or {}).get(LOCK_ANNOTATION)
    if not raw:
        return None
    try:
        return json.loads(raw).get("nodeID") or "unknown"
    except (ValueError, AttributeError):
        return raw[:80]  # older kured wrote the node name alone


def plan(daemonset, calendar, now: datetime) -> LockPlan:
    want, why = wanted(calendar, now)
    holder = holder_of(daemonset)
    if holder not in (None, HOLDER):
        return LockPlan(want, why, holder, False, f"kured's lock is held by {holder} (a reboot under way): it is "
                                                  "kured's to release; looked at again on the next run")
    change = (want == "hold") != (holder == HOLDER)
    return LockPlan(want, why, holder, change)


def apply(apps, namespace: str, name: str, lock: LockPlan, now: datetime, reason: str) -> None:
    """Set or remove the annotation with a replace at the DaemonSet's resourceVersion: kured
    changing it in between makes the API server refuse (409), and nothing is overwritten."""
    daemonset = apps.read_namespaced_daemon_set(name, namespace)
    if holder_of(daemonset) != lock.holder:
        raise RuntimeError(f"kured's lock changed since it was planned ({lock.holder} -> {holder_of(daemonset)}): "
                           "nothing done; the next run plans again")
    annotations = dict(daemonset.metadata.annotations or {})
    if lock.want == "hold":
        annotations[LOCK_ANNOTATION] = json.dumps({"nodeID": HOLDER, "metadata": {"unschedulable": False,
                                                                                  "reason": reason},
                                                   "created": now.isoformat(), "TTL": 0})
    else:
        annotations.pop(LOCK_ANNOTATION, None)
    daemonset.metadata.annotations = annotations
    apps.replace_namespaced_daemon_set(name, namespace, daemonset)
