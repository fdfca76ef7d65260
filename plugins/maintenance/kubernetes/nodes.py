"""Node maintenance, one node at a time: cordon, drain through the Eviction API, wait for the
external agent's reboot, wait until Ready, uncordon, check the cluster.

A failure at any step leaves the node schedulable again (unless the policy says otherwise)
and the report says exactly where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from maintenance.kubernetes.objects import is_daemon, is_mirror
from maintenance.security.versions import numbers


def reasons(node, settings) -> list[str]:
    """Why ``node`` needs maintenance under the policy (empty: it does not)."""
    found = []
    meta = node.metadata
    if settings.reboot_marker in (meta.labels or {}) or settings.reboot_marker in (meta.annotations or {}):
        found.append(f"marked {settings.reboot_marker}")
    for condition in node.status.conditions or []:
        if condition.type in settings.conditions and condition.status == "True":
            found.append(f"condition {condition.type}")
    kubelet = node.status.node_info.kubelet_version if node.status.node_info else None
    if settings.min_kubelet_version and kubelet and numbers(kubelet) < numbers(settings.min_kubelet_version):
        found.append(f"kubelet {kubelet} older than {settings.min_kubelet_version}")
    return found


def ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


@dataclass
class NodeRun:
    node: str
    reasons: list[str]
    steps: list[str] = field(default_factory=list)
    stopped_at: str | None = None
    error: str | None = None
    uncordoned: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.stopped_at is None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class StepFailed(RuntimeError):
    def __init__(self, step: str, message: str):
        super().__init__(message)
        self.step = step


def _cordon(core, name: str, on: bool) -> None:
    core.patch_node(name, {"spec": {"unschedulable": on}})


def _evictable(core, name: str) -> list:
    pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={name}").items
    return [p for p in pods if not is_daemon(p) and not is_mirror(p) and p.status.phase not in ("Succeeded", "Failed")]


def drain(core, name: str, settings, *, sleep=time.sleep, clock=time.monotonic) -> int:
    """Evict every pod but DaemonSet and mirror pods; retry refusals (429) until the drain timeout.
    An evicted pod terminates over its grace period: it is waited for, not evicted again."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    deadline = clock() + settings.drain_timeout_minutes * 60
    evicted = 0
    while True:
        pending = _evictable(core, name)
        if not pending:
            return evicted
        refused = []
        for pod in pending:
            if pod.metadata.deletion_timestamp:  # terminating: wait for it to go
                continue
            body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.metadata.name,
                                                                  namespace=pod.metadata.namespace))
            try:
                core.create_namespaced_pod_eviction(pod.metadata.name, pod.metadata.namespace, body)
                evicted += 1
            except ApiException as exc:
                if exc.status == 404:
                    continue  # gone meanwhile
                if exc.status != 429:
                    raise
                refused.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
        if clock() >= deadline:
            if refused:
                raise StepFailed("drain", f"drain timed out after {settings.drain_timeout_minutes:g} min: a "
                                          f"PodDisruptionBudget still refuses evicting {', '.join(refused)}")
            raise StepFailed("drain", f"drain timed out after {settings.drain_timeout_minutes:g} min: pods still "
                                      f"on the node: {', '.join(p.metadata.name for p in pending)}")
        sleep(settings.eviction_retry_seconds)


def _wait(what: str, step: str, minutes: float, test, *, sleep, clock, every: float) -> None:
    deadline = clock() + minutes * 60
    while not test():
        if clock() >= deadline:
            raise StepFailed(step, f"{what}: not within {minutes:g} min")
        sleep(every)


def cluster_health(core, settings, now) -> list[str]:
    problems = [f"node {n.metadata.name} is not Ready" for n in core.list_node().items if not ready(n)]
    pending = [p for p in core.list_pod_for_all_namespaces(field_selector="status.phase=Pending").items
               if (now - p.metadata.creation_timestamp).total_seconds() / 60 > settings.pending_grace_minutes]
    if len(pending) > settings.max_pending_pods:
        problems.append(f"{len(pending)} pod(s) Pending for more than {settings.pending_grace_minutes:g} min: "
                        + ", ".join(f"{p.metadata.namespace}/{p.metadata.name}" for p in pending[:10]))
    return problems


def before_cordon(core, name: str, settings) -> list[str]:
    """Why taking ``name`` out now would leave the cluster short: another node not Ready or
    cordoned (down, or in someone's maintenance), or fewer Ready, schedulable nodes left than the
    policy's minimum. Empty: go ahead."""
    others = [n for n in core.list_node().items if n.metadata.name != name]
    problems = [f"node {n.metadata.name} is not Ready" for n in others if not ready(n)]
    problems += [f"node {n.metadata.name} is cordoned" for n in others if n.spec and n.spec.unschedulable]
    serving = [n for n in others if ready(n) and not (n.spec and n.spec.unschedulable)]
    if len(serving) < settings.min_ready_nodes:
        problems.append(f"only {len(serving)} other node(s) Ready and schedulable, the policy keeps at least "
                        f"{settings.min_ready_nodes} (kubernetes.nodes.min_ready_nodes)")
    return problems


def maintain(core, node, settings, *, now_fn, sleep=time.sleep, clock=time.monotonic) -> NodeRun:
    """Take one node through maintenance. Never raises: the run says where it stopped."""
    name = node.metadata.name
    run = NodeRun(name, reasons(node, settings))
    boot = node.status.node_info.boot_id if node.status.node_info else None
    started = clock()
    cordoned = False
    try:
        problems = before_cordon(core, name, settings)
        if problems:  # looked before leaping: nothing was changed
            raise StepFailed("before cordon", f"{name} not taken out: " + "; ".join(problems))
        _cordon(core, name, True)
        cordoned = True
        run.steps.append("cordoned")
        run.steps.append(f"drained ({drain(core, name, settings, sleep=sleep, clock=clock)} pods evicted)")

        def rebooted():
            current = core.read_node(name)
            return (current.status.node_info and current.status.node_info.boot_id != boot) or not reasons(
                current, settings)

        _wait("the maintenance agent did not reboot or replace the node", "maintenance",
              settings.action_timeout_minutes, rebooted, sleep=sleep, clock=clock, every=2)
        run.steps.append("maintained (rebooted)")
        _wait("the node did not become Ready", "ready", settings.ready_timeout_minutes,
              lambda: ready(core.read_node(name)), sleep=sleep, clock=clock, every=2)
        run.steps.append("Ready")
        _cordon(core, name, False)
        cordoned, run.uncordoned = False, True
        run.steps.append("uncordoned")
        problems = cluster_health(core, settings, now_fn())
        if problems:
            raise StepFailed("verify", "cluster not healthy after the node came back: " + "; ".join(problems))
        run.steps.append("cluster healthy")
    except StepFailed as exc:
        run.stopped_at, run.error = exc.step, str(exc)
    except Exception as exc:  # an API error: stop here too, and say so
        run.stopped_at, run.error = run.steps[-1] if run.steps else "cordon", f"{type(exc).__name__}: {exc}"
    finally:
        if cordoned and settings.uncordon_on_failure:
            _cordon(core, name, False)
            run.uncordoned = True
            run.steps.append("uncordoned after the failure")
        run.seconds = round(clock() - started, 1)
    return run
