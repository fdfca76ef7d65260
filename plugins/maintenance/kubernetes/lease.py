"""One actor on the cluster's nodes at a time: a coordination.k8s.io Lease, as Kubernetes' own
controllers elect a leader.

Airflow's pools are per installation and a backfill runs beside the scheduled runs; the Lease
lives in the cluster, so whoever drains nodes (this project on any worker, a second Airflow)
sees it. The holder writes its name and the time it renewed; a lease not renewed within its
duration has expired (its holder died) and can be taken. Every change goes through the API
server's optimistic concurrency (the object's ``resourceVersion``): of two actors that try at
the same instant, one gets a conflict and treats the lease as held.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

NAME = "pathfinity-maintenance-nodes"


class LeaseHeld(RuntimeError):
    """Another actor holds the lease; the message names it."""


def _expired(spec, now: datetime) -> bool:
    renewed = spec.renew_time or spec.acquire_time
    return renewed is None or renewed + timedelta(seconds=spec.lease_duration_seconds or 0) < now


def _take(coordination, namespace: str, holder: str, seconds: int, now: datetime) -> str | None:
    """Take the lease; returns None, or the holder that keeps it."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    spec = client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=seconds, acquire_time=now,
                              renew_time=now)
    try:
        current = coordination.read_namespaced_lease(NAME, namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
        try:
            coordination.create_namespaced_lease(namespace, client.V1Lease(
                metadata=client.V1ObjectMeta(name=NAME, namespace=namespace), spec=spec))
            return None
        except ApiException as race:
            if race.status == 409:
                return "an actor that took it at the same instant"
            raise
    held = current.spec.holder_identity
    if held and held != holder and not _expired(current.spec, now):
        spec_now = current.spec
        return f"{held} (renewed {spec_now.renew_time:%Y-%m-%d %H:%M:%S %Z}, for {spec_now.lease_duration_seconds}s)"
    current.spec = spec
    try:
        coordination.replace_namespaced_lease(NAME, namespace, current)  # carries its resourceVersion
        return None
    except ApiException as exc:
        if exc.status == 409:
            return "an actor that took it at the same instant"
        raise


@contextmanager
def node_lease(coordination, namespace: str, holder: str, *, seconds: int, wait_s: float, poll_s: float = 5,
               sleep=time.sleep, now_fn=lambda: datetime.now(UTC)):
    """Hold the node lease for the work inside (``seconds``: as long as the work may take);
    raise LeaseHeld, naming the holder, when another actor keeps it longer than ``wait_s``.
    Released at the end, whatever happened."""
    deadline = time.monotonic() + wait_s
    while (other := _take(coordination, namespace, holder, seconds, now_fn())) is not None:
        if time.monotonic() >= deadline:
            raise LeaseHeld(f"nodes are being maintained by {other}; waited {wait_s:g}s, none touched this time")
        sleep(poll_s)
    try:
        yield
    finally:
        from kubernetes.client.exceptions import ApiException

        try:
            current = coordination.read_namespaced_lease(NAME, namespace)
            if current.spec.holder_identity == holder:
                current.spec.holder_identity = None
                coordination.replace_namespaced_lease(NAME, namespace, current)
        except ApiException:
            pass  # it expires by itself
