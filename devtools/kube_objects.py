"""Kubernetes objects as the API server returns them, for devtools/kube_server.py's Cluster
(the tests' clusters and the demo's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NOW = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)  # the first Sunday of December, 02:00 EST: the window


def ts(minutes_ago: float, now: datetime = NOW) -> str:
    return (now - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name, ns="web", *, phase="Running", reason=None, age=600, owner=None, node="node-a", labels=None,
        memory_limit="512Mi", now: datetime = NOW):
    meta = {"name": name, "namespace": ns, "creationTimestamp": ts(age, now), "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": owner[0], "name": owner[1], "uid": "u",
                                    "controller": True}]
    status = {"phase": phase, "startTime": ts(age, now)}
    if reason:
        status["reason"] = reason
    resources = {"limits": {"memory": memory_limit}, "requests": {"memory": "256Mi"}} if memory_limit else {}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "app", "resources": resources}]},
            "status": status}


def node(name, *, marked=False, kubelet="v1.30.2", ready=True):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"pathfinity.com/reboot-required": "true"} if marked else {},
                         "annotations": {}},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "nodeInfo": {"kubeletVersion": kubelet, "bootID": f"boot-{name}", "architecture": "amd64",
                                    "containerRuntimeVersion": "containerd://1.7.20", "kernelVersion": "6.1.0",
                                    "kubeProxyVersion": kubelet, "machineID": name, "operatingSystem": "linux",
                                    "osImage": "Debian GNU/Linux 12", "systemUUID": name}}}


def deployment(name, ns="web", labels=None):
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "app",
                                         "resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "2Gi"}}}]}}}}


def replicaset(name, deployment_name, ns="web"):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
        "name": name, "namespace": ns, "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name, "uid": "d", "controller": True}]}}


def metrics(name, ns, memory, app=None):
    return {"metadata": {"name": name, "namespace": ns, "labels": {"app": app} if app else {}},
            "containers": [{"name": "main", "usage": {"memory": memory, "cpu": "10m"}}]}


def pdb(name, ns, labels, allowed):
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": labels}},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}}
