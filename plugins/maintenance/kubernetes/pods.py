"""Pod clean-up and memory-pressure restarts: select, then act, capped per run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from maintenance.kubernetes.objects import controller, in_scope, pod_age_minutes, quantity


@dataclass
class PodChoice:
    namespace: str
    name: str
    phase: str
    reason: str
    age_minutes: float
    why: str  # why it is (or is not) deleted

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def finished_pods(core, batch, settings, now: datetime) -> tuple[list[PodChoice], list[PodChoice]]:
    """(to delete, kept) among Evicted, Failed and Succeeded pods of the namespaces in scope."""
    from kubernetes.client.exceptions import ApiException

    eligible, kept = [], []
    jobs_alive: dict[tuple[str, str], bool] = {}
    per_namespace: dict[str, int] = {}
    cleanup = settings.pod_cleanup
    for pod in core.list_pod_for_all_namespaces().items:
        phase = pod.status.phase or ""
        if phase not in ("Failed", "Succeeded"):
            continue
        ns, name = pod.metadata.namespace, pod.metadata.name
        choice = PodChoice(ns, name, phase, pod.status.reason or "", round(pod_age_minutes(pod, now), 1), "")
        if not in_scope(ns, settings):
            continue
        owner = controller(pod)
        if owner and owner[0] == "Job":
            key = (ns, owner[1])
            if key not in jobs_alive:
                try:
                    batch.read_namespaced_job(owner[1], ns)
                    jobs_alive[key] = True
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                    jobs_alive[key] = False
            if jobs_alive[key]:
                choice.why = f"kept: its Job {owner[1]} still exists (its history limit decides)"
                kept.append(choice)
                continue
        if choice.age_minutes < cleanup.min_age_minutes:
            choice.why = f"kept: younger than {cleanup.min_age_minutes:g} min"
            kept.append(choice)
            continue
        if per_namespace.get(ns, 0) >= cleanup.max_per_namespace or len(eligible) >= cleanup.max_per_run:
            choice.why = "kept: cap per namespace or per run reached; the next run continues"
            kept.append(choice)
            continue
        per_namespace[ns] = per_namespace.get(ns, 0) + 1
        choice.why = f"{choice.reason or phase}, {choice.age_minutes:.0f} min old"
        eligible.append(choice)
    return eligible, kept


@dataclass
class Restart:
    namespace: str
    kind: str  # Deployment, StatefulSet, or "" when the pod has no owner
    name: str
    pods: list[dict]
    why: str
    restart: bool

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def memory_pressure(core, apps, custom, policy_api, settings) -> list[Restart]:
    """Owners of pods using more than the threshold of their memory limit, deduplicated."""
    usage = {}
    for item in custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "pods").get("items", []):
        meta = item["metadata"]
        usage[(meta["namespace"], meta["name"])] = sum(quantity(c["usage"].get("memory")) for c in item["containers"])
    owners: dict[tuple[str, str, str], Restart] = {}
    for pod in core.list_pod_for_all_namespaces().items:
        ns, name = pod.metadata.namespace, pod.metadata.name
        if not in_scope(ns, settings) or (ns, name) not in usage or pod.status.phase != "Running":
            continue
        limits = [quantity((c.resources.limits or {}).get("memory")) if c.resources else 0 for c in pod.spec.containers]
        if not all(limits):
            continue  # without a limit there is no pressure to measure against
        share = usage[(ns, name)] / sum(limits)
        if share <= settings.memory_restarts.threshold:
            continue
        figures = {"pod": name, "memory_used_mb": round(usage[(ns, name)] / 2**20, 1),
                   "limit_mb": round(sum(limits) / 2**20, 1), "share": round(share, 3)}
        kind, owner = _workload(apps, pod)
        key = (ns, kind, owner or name)
        if key not in owners:
            owners[key] = Restart(ns, kind, owner or name, [], "", bool(kind))
        owners[key].pods.append(figures)
    budgets = policy_api.list_pod_disruption_budget_for_all_namespaces().items
    for restart in owners.values():
        if not restart.kind:
            restart.why = "a bare pod without an owner: never deleted, restart it by hand"
            continue
        blocking = [b.metadata.name for b in budgets if b.metadata.namespace == restart.namespace
                    and (b.status.disruptions_allowed or 0) < 1 and _covers(apps, b, restart)]
        if blocking:
            restart.restart, restart.why = False, f"PodDisruptionBudget {', '.join(blocking)} allows no disruption now"
        else:
            restart.why = f"{len(restart.pods)} pod(s) above {settings.memory_restarts.threshold:.0%} of their limit"
    return sorted(owners.values(), key=lambda r: (not r.restart, r.namespace, r.name))


def _workload(apps, pod) -> tuple[str, str | None]:
    owner = controller(pod)
    if not owner:
        return "", None
    kind, name = owner
    if kind == "ReplicaSet":
        rs = apps.read_namespaced_replica_set(name, pod.metadata.namespace)
        up = controller(rs)
        return ("Deployment", up[1]) if up and up[0] == "Deployment" else ("", None)
    if kind == "StatefulSet":
        return "StatefulSet", name
    return "", None


def _covers(apps, budget, restart: Restart) -> bool:
    wanted = (budget.spec.selector.match_labels or {}) if budget.spec.selector else {}
    read = apps.read_namespaced_deployment if restart.kind == "Deployment" else apps.read_namespaced_stateful_set
    labels = read(restart.name, restart.namespace).spec.template.metadata.labels or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def rollout_restart(apps, restart: Restart, now: datetime) -> None:
    """What ``kubectl rollout restart`` does: a new template annotation, so the controller
    replaces the pods under its own rolling-update rules."""
    body = {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": now.isoformat()}}}}}
    if restart.kind == "Deployment":
        apps.patch_namespaced_deployment(restart.name, restart.namespace, body)
    else:
        apps.patch_namespaced_stateful_set(restart.name, restart.namespace, body)
