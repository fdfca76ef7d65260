"""Reading Kubernetes objects: ages, owners, quantities, scope."""

from __future__ import annotations

import re
from datetime import datetime

_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
          "Ti": 2**40, "m": 1e-3, "n": 1e-9, "u": 1e-6}


def quantity(value: str | None) -> float:
    """A Kubernetes quantity ("512Mi", "250m", "1G") as a number of base units."""
    if not value:
        return 0.0
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    if not match or match[2] not in _UNITS:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return float(match[1]) * _UNITS[match[2]]


def in_scope(namespace: str, settings) -> bool:
    if namespace in settings.excluded_namespaces:
        return False
    return not settings.namespaces or namespace in settings.namespaces


def controller(obj) -> tuple[str, str] | None:
    """(kind, name) of the object's controlling owner."""
    for ref in obj.metadata.owner_references or []:
        if ref.controller:
            return ref.kind, ref.name
    refs = obj.metadata.owner_references or []
    return (refs[0].kind, refs[0].name) if refs else None


def pod_age_minutes(pod, now: datetime) -> float:
    started = pod.status.start_time or pod.metadata.creation_timestamp
    return (now - started).total_seconds() / 60 if started else 0.0


def is_daemon(pod) -> bool:
    owner = controller(pod)
    return bool(owner and owner[0] == "DaemonSet")


def is_mirror(pod) -> bool:
    return "kubernetes.io/config.mirror" in (pod.metadata.annotations or {})
