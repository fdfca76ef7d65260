"""Cluster hygiene (weekly): released or failed volumes, namespaces without a NetworkPolicy,
workloads without requests or limits, and requests far above use (the quota review)."""

from __future__ import annotations

from maintenance.kubernetes.objects import in_scope, quantity


def report(core, apps, networking, custom, settings) -> dict:
    volumes = [{"volume": v.metadata.name, "phase": v.status.phase,
                "claim": f"{v.spec.claim_ref.namespace}/{v.spec.claim_ref.name}" if v.spec.claim_ref else None}
               for v in core.list_persistent_volume().items if v.status.phase in ("Released", "Failed")]
    guarded = {p.metadata.namespace for p in networking.list_network_policy_for_all_namespaces().items}
    open_namespaces = sorted(n.metadata.name for n in core.list_namespace().items
                             if in_scope(n.metadata.name, settings) and n.metadata.name not in guarded)
    unbounded, requested = [], {}
    workloads = [("Deployment", d) for d in apps.list_deployment_for_all_namespaces().items] + \
                [("StatefulSet", s) for s in apps.list_stateful_set_for_all_namespaces().items]
    for kind, w in workloads:
        ns = w.metadata.namespace
        if not in_scope(ns, settings):
            continue
        for c in w.spec.template.spec.containers:
            res = c.resources
            present = (("requests", res and res.requests), ("limits", res and res.limits))
            missing = [k for k, have in present if not have]
            if missing:
                unbounded.append({"workload": f"{kind} {ns}/{w.metadata.name}", "container": c.name,
                                  "missing": missing})
        requested[(ns, w.metadata.name)] = sum(quantity(((c.resources and c.resources.requests) or {})
                                                        .get("memory")) for c in w.spec.template.spec.containers)
    usage = {}
    for item in custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "pods").get("items", []):
        meta = item["metadata"]
        app = (meta.get("labels") or {}).get("app")
        if app:
            usage.setdefault((meta["namespace"], app), []).append(
                sum(quantity(c["usage"].get("memory")) for c in item["containers"]))
    oversized = []
    for (ns, name), request in requested.items():
        used = usage.get((ns, name))
        if request and used:
            share = (sum(used) / len(used)) / request
            if share < settings.request_use_ratio:
                oversized.append({"workload": f"{ns}/{name}", "memory_request_mb": round(request / 2**20),
                                  "memory_used_mb": round(sum(used) / len(used) / 2**20), "share": round(share, 2)})
    return {"released_volumes": volumes, "namespaces_without_network_policy": open_namespaces,
            "workloads_without_requests_or_limits": unbounded, "requests_far_above_use": oversized}
