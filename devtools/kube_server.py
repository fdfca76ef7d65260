"""A local HTTP server that answers the Kubernetes API's paths and shapes for what the
maintenance uses, so the official ``kubernetes`` client builds and parses real requests.

No cluster can run on the development machines; this stands in for the API server in the
tests and records every request (method and path), so a test can prove that a dry run
sent only reads. It holds objects as the API returns them (JSON, camelCase) and applies
what the real server would: deletes, evictions refused with 429 while a
PodDisruptionBudget allows no disruption, merge patches of nodes and workloads.

A node "agent" can be simulated: ``reboot_after_drain`` makes a cordoned node without
evictable pods reboot (new boot id, marker removed) after a delay, as an external
reboot daemon would.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

from devtools.jsonhttp import JSONHandler, serve

LISTS = {"pods": ("v1", "PodList"), "nodes": ("v1", "NodeList"), "persistentvolumes": ("v1", "PersistentVolumeList"),
         "namespaces": ("v1", "NamespaceList"), "poddisruptionbudgets": ("policy/v1", "PodDisruptionBudgetList"),
         "networkpolicies": ("networking.k8s.io/v1", "NetworkPolicyList"), "deployments": ("apps/v1", "DeploymentList"),
         "statefulsets": ("apps/v1", "StatefulSetList"), "replicasets": ("apps/v1", "ReplicaSetList"),
         "jobs": ("batch/v1", "JobList"), "metrics": ("metrics.k8s.io/v1beta1", "PodMetricsList"),
         "leases": ("coordination.k8s.io/v1", "LeaseList"), "daemonsets": ("apps/v1", "DaemonSetList")}

_PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
                   r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<kind>[a-z]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[a-z]+))?$")


@dataclass
class Cluster:
    pods: list[dict] = field(default_factory=list)
    nodes: list[dict] = field(default_factory=list)
    persistentvolumes: list[dict] = field(default_factory=list)
    namespaces: list[dict] = field(default_factory=list)
    poddisruptionbudgets: list[dict] = field(default_factory=list)
    networkpolicies: list[dict] = field(default_factory=list)
    deployments: list[dict] = field(default_factory=list)
    statefulsets: list[dict] = field(default_factory=list)
    replicasets: list[dict] = field(default_factory=list)
    jobs: list[dict] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    leases: list[dict] = field(default_factory=list)
    daemonsets: list[dict] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    reboot_after_drain: float | None = None  # seconds; None: no agent reboots nodes
    # An evicted pod terminates over its grace period (seconds), then is gone; its controller
    # (when it has one) brings a replacement back after ``recreate_after`` seconds (None: never),
    # on another schedulable node, and its PodDisruptionBudget's disruptionsAllowed goes back up.
    grace_seconds: float = 0.1
    recreate_after: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    _coming_back: list = field(default_factory=list)  # (when, pod, budget name)

    @property
    def mutations(self) -> list[tuple[str, str]]:
        """Every request other than a read (GET: get, list, watch), of any verb."""
        return [r for r in self.requests if r[0] != "GET"]

    def find(self, kind: str, namespace: str | None, name: str) -> dict | None:
        return next((o for o in getattr(self, kind) if o["metadata"]["name"] == name
                     and o["metadata"].get("namespace") in (namespace, None)), None)

    def _agent(self) -> None:
        """An external reboot daemon: reboots cordoned, drained nodes that carry the marker."""
        while self.reboot_after_drain is not None:
            time.sleep(0.05)
            with self.lock:
                for node in self.nodes:
                    meta, spec = node["metadata"], node.setdefault("spec", {})
                    marked = any("reboot-required" in k for k in {**meta.get("labels", {}),
                                                                  **meta.get("annotations", {})})
                    drained = not any(p["spec"].get("nodeName") == meta["name"] and not _daemon(p)
                                      and p["status"].get("phase") not in ("Succeeded", "Failed") for p in self.pods)
                    if spec.get("unschedulable") and marked and drained and not node.get("_rebooting"):
                        node["_rebooting"] = time.monotonic() + self.reboot_after_drain
                    if node.get("_rebooting") and time.monotonic() >= node["_rebooting"]:
                        node.pop("_rebooting")
                        info = node["status"].setdefault("nodeInfo", {})
                        info["bootID"] = info.get("bootID", "boot") + "-rebooted"
                        for where in ("labels", "annotations"):
                            meta[where] = {k: v for k, v in meta.get(where, {}).items() if "reboot-required" not in k}


def _controllers(cluster: Cluster) -> None:
    """What the kubelet and the workload controllers would do about evicted pods."""
    while True:
        time.sleep(0.02)
        now = time.monotonic()
        with cluster.lock:
            for pod in [p for p in cluster.pods if p.get("_gone_at") and p["_gone_at"] <= now]:
                cluster.pods.remove(pod)
                owner = pod["metadata"].get("ownerReferences")
                if owner and cluster.recreate_after is not None:
                    cluster._coming_back.append((now + cluster.recreate_after, pod, pod.get("_budget")))
                elif pod.get("_budget"):
                    _budget_back(cluster, pod["_budget"], pod["metadata"].get("namespace"))
            for entry in [e for e in cluster._coming_back if e[0] <= now]:
                cluster._coming_back.remove(entry)
                _, pod, budget = entry
                fresh = copy.deepcopy({k: v for k, v in pod.items() if not k.startswith("_")})
                fresh["metadata"].pop("deletionTimestamp", None)
                fresh["metadata"]["name"] += "-r"
                free = [n["metadata"]["name"] for n in cluster.nodes if not n.get("spec", {}).get("unschedulable")
                        and n["metadata"]["name"] != pod["spec"].get("nodeName")]
                fresh["spec"]["nodeName"] = free[0] if free else None
                fresh["status"]["phase"] = "Running" if free else "Pending"
                cluster.pods.append(fresh)
                if budget and free:
                    _budget_back(cluster, budget, pod["metadata"].get("namespace"))


def _budget_back(cluster: Cluster, name: str, namespace: str | None) -> None:
    budget = cluster.find("poddisruptionbudgets", namespace, name)
    if budget is not None:
        status = budget.setdefault("status", {})
        status["disruptionsAllowed"] = status.get("disruptionsAllowed", 0) + 1


def _daemon(pod: dict) -> bool:
    return any(o.get("kind") == "DaemonSet" for o in pod["metadata"].get("ownerReferences", []))


def _merge(target: dict, patch: dict) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure" if code >= 400 else "Success",
            "message": message, "reason": reason, "code": code}


def _selected(obj: dict, selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, want = term.partition("=")
        want = want.lstrip("=")
        value: object = obj
        for part in key.split("."):
            value = value.get(part, {}) if isinstance(value, dict) else {}
        if (value if value != {} else "") != want:
            return False
    return True


def kubernetes_connection(url: str) -> dict:
    """An Airflow ``kubernetes`` connection to the server at ``url`` (a kube_config in its extra)."""
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "local",
              "clusters": [{"name": "local", "cluster": {"server": url}}],
              "contexts": [{"name": "local", "context": {"cluster": "local", "user": "local"}}],
              "users": [{"name": "local", "user": {"token": "local"}}]}
    return {"conn_type": "kubernetes", "extra": {"kube_config": json.dumps(config)}}


def start_kube_server(cluster: Cluster):
    """Serve ``cluster`` on a free port; returns (base URL, server)."""

    class Handler(JSONHandler):
        def _route(self):
            url = urlparse(self.path)
            match = _PATH.match(url.path)
            return match, {k: v[0] for k, v in parse_qs(url.query).items()}

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length)) if length else {}

        def _handle(self, method: str) -> None:
            cluster.requests.append((method, urlparse(self.path).path))
            match, query = self._route()
            if not match or (match["kind"] not in LISTS and match["group"] != "metrics.k8s.io"):
                return self._send(404, _status(404, "NotFound", f"the server could not find {self.path}"))
            kind, ns, name, sub = match["kind"], match["ns"], match["name"], match["sub"]
            if match["group"] == "metrics.k8s.io":
                kind = "metrics"
            with cluster.lock:
                if method == "GET" and not name:
                    items = [o for o in getattr(cluster, kind) if ns is None or o["metadata"].get("namespace") == ns]
                    if "fieldSelector" in query:
                        items = [o for o in items if _selected(o, query["fieldSelector"])]
                    api, list_kind = LISTS[kind]
                    return self._send(200, {"kind": list_kind, "apiVersion": api,
                                            "metadata": {"resourceVersion": "1"},
                                            "items": [{k: v for k, v in o.items() if not k.startswith("_")}
                                                      for o in items]})
                if method == "POST" and not name:  # create, refused when the name is taken
                    body = self._posted or {}
                    meta = body.setdefault("metadata", {})
                    if cluster.find(kind, ns, meta.get("name", "")) is not None:
                        return self._send(409, _status(409, "AlreadyExists", f'{kind} "{meta.get("name")}" '
                                                                            "already exists"))
                    meta.update(namespace=ns, resourceVersion="1")
                    getattr(cluster, kind).append(body)
                    return self._send(201, body)
                obj = cluster.find(kind, ns, name)
                if obj is None:
                    return self._send(404, _status(404, "NotFound", f'{kind} "{name}" not found'))
                if method == "GET":
                    return self._send(200, {k: v for k, v in obj.items() if not k.startswith("_")})
                if method == "DELETE":
                    getattr(cluster, kind).remove(obj)
                    return self._send(200, obj)
                if method == "POST" and sub == "eviction":
                    return self._evict(obj)
                if method == "PATCH":
                    _merge(obj, self._body())
                    return self._send(200, obj)
                if method == "PUT" and not sub:  # a replace: the body is the whole new object
                    replacement = self._body()
                    sent = replacement.setdefault("metadata", {}).get("resourceVersion")
                    stored = obj["metadata"].get("resourceVersion", "1")
                    if sent is not None and sent != stored:  # optimistic concurrency, as the API server does
                        return self._send(409, _status(409, "Conflict", f'Operation cannot be fulfilled on {kind} '
                                                       f'"{name}": the object has been modified'))
                    replacement["metadata"].update(name=name, resourceVersion=str(int(stored) + 1))
                    objects = getattr(cluster, kind)
                    objects[objects.index(obj)] = replacement
                    return self._send(200, replacement)
            return self._send(405, _status(405, "MethodNotAllowed", f"{method} {self.path}"))

        def _evict(self, pod: dict):
            if pod.get("_gone_at"):  # already terminating: the API server accepts it again
                return self._send(201, _status(201, "Created", "evicted"))
            labels = pod["metadata"].get("labels", {})
            for pdb in cluster.poddisruptionbudgets:
                wanted = pdb["spec"].get("selector", {}).get("matchLabels", {})
                if pdb["metadata"].get("namespace") == pod["metadata"].get("namespace") and wanted and all(
                        labels.get(k) == v for k, v in wanted.items()):
                    status = pdb.setdefault("status", {})
                    if status.get("disruptionsAllowed", 0) < 1:
                        return self._send(429, _status(429, "TooManyRequests", "Cannot evict pod as it would "
                                                       "violate the pod's disruption budget."))
                    status["disruptionsAllowed"] -= 1  # until the pod is back
                    pod["_budget"] = pdb["metadata"]["name"]
            # The pod terminates over its grace period: it stays listed, marked, until it is gone.
            grace = pod["spec"].get("terminationGracePeriodSeconds")
            pod["metadata"]["deletionTimestamp"] = "2026-12-06T07:00:00Z"
            pod["_gone_at"] = time.monotonic() + (cluster.grace_seconds if grace is None else grace)
            return self._send(201, _status(201, "Created", "evicted"))

        def do_GET(self):
            self._handle("GET")

        def do_DELETE(self):
            self._handle("DELETE")

        def do_POST(self):
            self._posted = self._body() if self.headers.get("Content-Length") else None
            self._handle("POST")

        def do_PATCH(self):
            self._handle("PATCH")

        def do_PUT(self):
            self._handle("PUT")

        def do_HEAD(self):  # recorded, answered as the API server does: no such route
            cluster.requests.append(("HEAD", urlparse(self.path).path))
            self._send(405, _status(405, "MethodNotAllowed", f"HEAD {self.path}"))

        def do_OPTIONS(self):
            cluster.requests.append(("OPTIONS", urlparse(self.path).path))
            self._send(405, _status(405, "MethodNotAllowed", f"OPTIONS {self.path}"))

    url, server = serve(Handler)
    if cluster.reboot_after_drain is not None:
        threading.Thread(target=cluster._agent, daemon=True).start()
    if not getattr(cluster, "_controlled", False):
        cluster._controlled = True
        threading.Thread(target=_controllers, args=(cluster,), daemon=True).start()
    return url, server
