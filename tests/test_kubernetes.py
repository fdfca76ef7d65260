"""Kubernetes maintenance through the real ``kubernetes`` client against a local HTTP server
answering the API's paths and shapes (devtools/kube_server.py): no cluster runs here."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from kubernetes import client
from maintenance import clock
from maintenance.kubernetes import hygiene, nodes, pods
from maintenance.policy.model import Kubernetes, NodeMaintenance

from devtools.kube_objects import NOW, deployment, metrics, node, pdb, pod, replicaset
from devtools.kube_server import Cluster, kubernetes_connection, start_kube_server
from tests.conftest import set_conn
from tests.support.airflow_runs import run_dag


def apis(url: str) -> dict:
    configuration = client.Configuration(host=url)
    api = client.ApiClient(configuration)
    return {"core": client.CoreV1Api(api), "apps": client.AppsV1Api(api), "batch": client.BatchV1Api(api),
            "policy": client.PolicyV1Api(api), "custom": client.CustomObjectsApi(api),
            "networking": client.NetworkingV1Api(api)}


@pytest.fixture
def cluster():
    state = Cluster()
    url, server = start_kube_server(state)
    state.url = url
    yield state
    server.shutdown()


SETTINGS = Kubernetes()


# --- pod clean-up -----------------------------------------------------------------------------------

def test_cleanup_picks_exactly_the_eligible_pods(cluster):
    cluster.pods = [
        pod("evicted", phase="Failed", reason="Evicted"),
        pod("crashed", phase="Failed"),
        pod("done", phase="Succeeded"),
        pod("running", phase="Running"),
        pod("just-failed", phase="Failed", age=10),                      # younger than 60 min
        pod("system", ns="kube-system", phase="Failed", reason="Evicted"),  # excluded namespace
        pod("job-pod", phase="Succeeded", owner=("Job", "nightly-42")),     # its Job still exists
        pod("orphan-job-pod", phase="Succeeded", owner=("Job", "gone-1")),  # its Job was deleted
    ]
    cluster.jobs = [{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "nightly-42", "namespace": "web"}}]
    k = apis(cluster.url)
    chosen, kept = pods.finished_pods(k["core"], k["batch"], SETTINGS, NOW)
    assert sorted(p.name for p in chosen) == ["crashed", "done", "evicted", "orphan-job-pod"]
    assert {p.name: p.why for p in kept} == {
        "just-failed": "kept: younger than 60 min",
        "job-pod": "kept: its Job nightly-42 still exists (its history limit decides)"}
    assert cluster.mutations == []


def test_cleanup_caps_per_namespace():
    settings = Kubernetes(pod_cleanup={"max_per_namespace": 2})
    state = Cluster(pods=[pod(f"p{n}", phase="Failed") for n in range(5)])
    url, server = start_kube_server(state)
    try:
        k = apis(url)
        chosen, kept = pods.finished_pods(k["core"], k["batch"], settings, NOW)
    finally:
        server.shutdown()
    assert len(chosen) == 2 and len(kept) == 3


# --- memory pressure --------------------------------------------------------------------------------------

def test_restart_patches_the_owner_and_never_a_bare_pod(cluster):
    cluster.deployments = [deployment("api"), deployment("search")]
    cluster.replicasets = [replicaset("api-7d9f", "api"), replicaset("search-5c4b", "search")]
    cluster.pods = [pod("api-7d9f-a", owner=("ReplicaSet", "api-7d9f"), labels={"app": "api"}),
                    pod("api-7d9f-b", owner=("ReplicaSet", "api-7d9f"), labels={"app": "api"}),
                    pod("search-5c4b-a", owner=("ReplicaSet", "search-5c4b"), labels={"app": "search"}),
                    pod("debug-shell"),
                    pod("calm", owner=("ReplicaSet", "api-7d9f"), labels={"app": "api"})]
    cluster.metrics = [metrics("api-7d9f-a", "web", "490Mi"), metrics("api-7d9f-b", "web", "500Mi"),
                       metrics("search-5c4b-a", "web", "480Mi"), metrics("debug-shell", "web", "500Mi"),
                       metrics("calm", "web", "100Mi")]
    cluster.poddisruptionbudgets = [pdb("search-pdb", "web", {"app": "search"}, 0)]
    k = apis(cluster.url)
    found = {r.name: r for r in pods.memory_pressure(k["core"], k["apps"], k["custom"], k["policy"], SETTINGS)}
    assert found["api"].kind == "Deployment" and found["api"].restart and len(found["api"].pods) == 2
    assert found["api"].pods[0]["share"] > 0.9
    assert not found["search"].restart and "PodDisruptionBudget search-pdb" in found["search"].why
    assert found["debug-shell"].kind == "" and not found["debug-shell"].restart
    assert "calm" not in found
    assert cluster.mutations == []  # selecting sends only reads
    pods.rollout_restart(k["apps"], found["api"], NOW)
    assert cluster.mutations == [("PATCH", "/apis/apps/v1/namespaces/web/deployments/api")]
    annotations = cluster.find("deployments", "web", "api")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["kubectl.kubernetes.io/restartedAt"] == NOW.isoformat()


# --- nodes ------------------------------------------------------------------------------------------------

FAST = NodeMaintenance(drain_timeout_minutes=0.02, eviction_retry_seconds=0.05, action_timeout_minutes=0.2,
                       ready_timeout_minutes=0.1)


def test_node_selection_follows_the_policy():
    settings = NodeMaintenance(conditions=["KernelDeadlock"], min_kubelet_version="v1.30.0")
    k8s = client.ApiClient()

    def as_node(data):
        return k8s.deserialize(type("R", (), {"data": json.dumps(data)})(), "V1Node")

    stale = node("old", kubelet="v1.29.9")
    stuck = node("stuck")
    stuck["status"]["conditions"].append({"type": "KernelDeadlock", "status": "True"})
    assert nodes.reasons(as_node(node("fine")), settings) == []
    assert nodes.reasons(as_node(node("marked", marked=True)), settings) == ["marked pathfinity.com/reboot-required"]
    assert nodes.reasons(as_node(stale), settings) == ["kubelet v1.29.9 older than v1.30.0"]
    assert nodes.reasons(as_node(stuck), settings) == ["condition KernelDeadlock"]


def test_a_node_goes_through_cordon_drain_reboot_ready_uncordon(cluster):
    cluster.reboot_after_drain = 0.1
    cluster.nodes = [node("node-a", marked=True), node("node-b")]
    cluster.pods = [pod("api-1", owner=("ReplicaSet", "api-1"), labels={"app": "api"}),
                    pod("fluentd", owner=("DaemonSet", "fluentd"))]
    url, server = start_kube_server(cluster)  # a second server on the same state, with the reboot agent
    try:
        k = apis(url)
        run = nodes.maintain(k["core"], k["core"].read_node("node-a"), FAST, now_fn=lambda: NOW)
    finally:
        server.shutdown()
    assert run.ok, run.error
    assert run.steps == ["cordoned", "drained (1 pods evicted)", "maintained (rebooted)", "Ready", "uncordoned",
                         "cluster healthy"]
    assert [p["metadata"]["name"] for p in cluster.pods] == ["fluentd"]  # DaemonSet pods stay
    assert cluster.find("nodes", None, "node-a")["spec"]["unschedulable"] is False


def test_a_drain_blocked_by_a_budget_retries_then_times_out_and_leaves_the_node_schedulable(cluster):
    cluster.nodes = [node("node-a", marked=True), node("node-b")]
    cluster.pods = [pod("db-0", owner=("StatefulSet", "db"), labels={"app": "db"})]
    cluster.poddisruptionbudgets = [pdb("db-pdb", "web", {"app": "db"}, 0)]
    k = apis(cluster.url)
    run = nodes.maintain(k["core"], k["core"].read_node("node-a"), FAST, now_fn=lambda: NOW)
    assert run.stopped_at == "drain"
    assert "PodDisruptionBudget still refuses evicting web/db-0" in run.error
    assert run.uncordoned and cluster.find("nodes", None, "node-a")["spec"]["unschedulable"] is False
    evictions = [r for r in cluster.requests if r[1].endswith("/eviction")]
    assert len(evictions) >= 2  # retried before giving up
    assert [p["metadata"]["name"] for p in cluster.pods] == ["db-0"]


def test_an_agent_that_never_reboots_stops_the_run_at_the_maintenance_step(cluster):
    cluster.nodes = [node("node-a", marked=True), node("node-b")]
    k = apis(cluster.url)
    run = nodes.maintain(k["core"], k["core"].read_node("node-a"), FAST, now_fn=lambda: NOW)
    assert run.stopped_at == "maintenance" and "did not reboot or replace the node" in run.error
    assert cluster.find("nodes", None, "node-a")["spec"]["unschedulable"] is False


@pytest.mark.parametrize(("others", "expected"), [
    ([], "only 0 other node(s) Ready and schedulable, the policy keeps at least 1"),
    (["not ready"], "node node-b is not Ready"),
    (["cordoned"], "node node-b is cordoned"),
    (["not ready", "ready"], "node node-b is not Ready"),
])
def test_a_node_is_not_taken_out_while_another_is_down_or_out(cluster, others, expected):
    """Looked at before the cordon: nothing is changed when the cluster cannot spare the node."""
    cluster.nodes = [node("node-a", marked=True)]
    for i, state in enumerate(others):
        other = node(f"node-{'bc'[i]}", ready=state != "not ready")
        if state == "cordoned":
            other["spec"] = {"unschedulable": True}
        cluster.nodes.append(other)
    k = apis(cluster.url)
    run = nodes.maintain(k["core"], k["core"].read_node("node-a"), FAST, now_fn=lambda: NOW)
    assert run.stopped_at == "before cordon" and expected in run.error
    assert cluster.mutations == []  # not even a cordon
    assert not cluster.find("nodes", None, "node-a").get("spec", {}).get("unschedulable")


# --- hygiene ------------------------------------------------------------------------------------------

def test_hygiene_report(cluster):
    cluster.persistentvolumes = [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-old"},
         "spec": {"claimRef": {"namespace": "web", "name": "data"}}, "status": {"phase": "Released"}},
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-used"}, "spec": {},
         "status": {"phase": "Bound"}}]
    cluster.namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
                          for n in ("web", "batch", "kube-system")]
    cluster.networkpolicies = [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                "metadata": {"name": "default-deny", "namespace": "web"},
                                "spec": {"podSelector": {}}}]
    bare = deployment("worker", ns="batch")
    bare["spec"]["template"]["spec"]["containers"][0]["resources"] = {}
    cluster.deployments = [deployment("api"), bare]
    cluster.metrics = [metrics("api-1", "web", "100Mi", app="api"), metrics("api-2", "web", "120Mi", app="api")]
    k = apis(cluster.url)
    found = hygiene.report(k["core"], k["apps"], k["networking"], k["custom"], SETTINGS)
    assert found["released_volumes"] == [{"volume": "pv-old", "phase": "Released", "claim": "web/data"}]
    assert found["namespaces_without_network_policy"] == ["batch"]
    assert found["workloads_without_requests_or_limits"] == [
        {"workload": "Deployment batch/worker", "container": "main", "missing": ["requests", "limits"]}]
    assert found["requests_far_above_use"] == [{"workload": "web/api", "memory_request_mb": 1024,
                                                "memory_used_mb": 110, "share": 0.11}]


# --- through the DAG ----------------------------------------------------------------------------------

@pytest.fixture
def k8s_conn(cluster, tmp_path, monkeypatch):
    """The kubernetes_default connection to the test server; node waits short enough for a test."""
    from tests.conftest import use_policy

    use_policy(tmp_path, monkeypatch, kubernetes={"nodes": {
        "drain_timeout_minutes": 0.05, "eviction_retry_seconds": 0.05, "action_timeout_minutes": 0.3,
        "ready_timeout_minutes": 0.2}})
    set_conn("kubernetes_default", kubernetes_connection(cluster.url))
    return cluster


def test_dry_run_sends_no_mutating_request(k8s_conn, platform_db, airflow_db, slack, monkeypatch):
    cluster = k8s_conn
    cluster.nodes = [node("node-a", marked=True)]
    cluster.deployments = [deployment("api")]
    cluster.replicasets = [replicaset("api-1", "api")]
    cluster.pods = [pod("evicted", phase="Failed", reason="Evicted"),
                    pod("api-1-a", owner=("ReplicaSet", "api-1"), labels={"app": "api"})]
    cluster.metrics = [metrics("api-1-a", "web", "500Mi")]
    monkeypatch.setattr(clock, "now", lambda: NOW)
    window = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)  # the first Sunday 02:00 EST: the planned window
    result = run_dag("maintenance_kubernetes", window, {"dry_run": True, "force_reason": None})
    assert {t: result.states[t] for t in ("pod_cleanup", "memory_restarts", "node_maintenance", "hygiene")} == {
        "pod_cleanup": "success", "memory_restarts": "success", "node_maintenance": "success",
        "hygiene": "success"}, result.states
    assert cluster.mutations == []
    assert result.xcom("node_maintenance")["due"] == [{"node": "node-a",
                                                        "reasons": ["marked pathfinity.com/reboot-required"]}]
    assert [p["name"] for p in result.xcom("pod_cleanup")["chosen"]] == ["evicted"]


def test_scheduled_run_cleans_restarts_and_maintains_one_node_at_a_time(k8s_conn, platform_db, airflow_db, slack,
                                                                         monkeypatch):
    cluster = k8s_conn
    cluster.reboot_after_drain = 0.1
    cluster.nodes = [node("node-a", marked=True), node("node-b", marked=True)]
    cluster.deployments = [deployment("api")]
    cluster.replicasets = [replicaset("api-1", "api")]
    cluster.pods = [pod("evicted", phase="Failed", reason="Evicted"),
                    pod("api-1-a", owner=("ReplicaSet", "api-1"), labels={"app": "api"}, node="node-b")]
    cluster.metrics = [metrics("api-1-a", "web", "500Mi")]
    url, server = start_kube_server(cluster)  # the reboot agent runs with this one
    cluster.url = url
    try:
        set_conn("kubernetes_default", kubernetes_connection(url))
        monkeypatch.setattr(clock, "now", lambda: NOW)
        result = run_dag("maintenance_kubernetes", datetime(2026, 12, 6, 7, 0, tzinfo=UTC), {"dry_run": False})
    finally:
        server.shutdown()
    assert result.states["node_maintenance"] == "success", result.states
    runs = result.xcom("node_maintenance")["runs"]
    assert [r["node"] for r in runs] == ["node-a"]  # one node per run (policy: max_nodes_per_run 1)
    cordons = [r for r in cluster.requests if r == ("PATCH", "/api/v1/nodes/node-b")]
    assert cordons == []  # node-b was never touched while node-a was in maintenance
    assert ("DELETE", "/api/v1/namespaces/web/pods/evicted") in cluster.requests
    assert ("PATCH", "/apis/apps/v1/namespaces/web/deployments/api") in cluster.requests


def test_tuesday_patch_review_finds_pending_reboots_old_kernels_and_drift(k8s_conn, platform_db, airflow_db, slack,
                                                                         tmp_path, monkeypatch):
    from tests.conftest import use_policy

    cluster = k8s_conn
    patched, old = node("node-a", marked=True), node("node-b", kubelet="v1.28.4")
    old["status"]["nodeInfo"] |= {"kernelVersion": "5.10.0-26-cloud-amd64", "osImage": "Debian GNU/Linux 11"}
    patched["status"]["nodeInfo"]["kernelVersion"] = "6.1.0-28-cloud-amd64"
    cluster.nodes = [patched, old]
    use_policy(tmp_path, monkeypatch, kubernetes={"min_kernel_version": "6.1.0-25",
                                                  "nodes": {"min_kubelet_version": "v1.29.0"}})
    result = run_dag("maintenance_weekly", datetime(2026, 12, 1, 6, tzinfo=UTC), {"theme": "auto"},
                     mark_success_pattern=r"^tuesday\.(dependency_review|certificate_review)$")
    assert result.states["tuesday.patch_review"] == "success", result.states
    found = result.xcom("tuesday.patch_review")
    assert {(f["check"], f["target"]) for f in found["findings"]} == {
        ("patch_reboot_pending", "node-a"), ("kernel_outdated", "node-b"), ("kubelet_outdated", "node-b"),
        ("node_image_drift", "cluster")}
    assert [n["kernel"] for n in found["nodes"]] == ["6.1.0-28-cloud-amd64", "5.10.0-26-cloud-amd64"]
    assert cluster.mutations == []  # it only reads


def test_the_stand_in_records_every_verb_and_answers_the_unknown_as_the_api_server_does(cluster):
    """A dry-run test asserts ``mutations == []``: that holds only if a request of any verb is seen."""
    import urllib.error
    import urllib.request

    cluster.nodes = [node("node-a")]
    k = apis(cluster.url)
    body = k["core"].read_node("node-a")
    body.spec.unschedulable = True
    k["core"].replace_node("node-a", body)  # PUT
    assert cluster.find("nodes", None, "node-a")["spec"]["unschedulable"] is True
    for verb in ("HEAD", "OPTIONS", "PUT"):
        request = urllib.request.Request(f"{cluster.url}/api/v1/nodes/nope" if verb == "PUT" else
                                         f"{cluster.url}/api/v1/nodes", method=verb,
                                         data=b"{}" if verb == "PUT" else None)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == (404 if verb == "PUT" else 405)
    with pytest.raises(client.ApiException) as missing:
        k["core"].read_namespaced_config_map("x", "default")  # a kind the stand-in does not hold
    assert missing.value.status == 404
    assert [m[0] for m in cluster.mutations] == ["PUT", "HEAD", "OPTIONS", "PUT"]


def test_one_actor_holds_the_node_lease_at_a_time(cluster):
    from datetime import timedelta

    from maintenance.kubernetes.lease import LeaseHeld, node_lease

    coordination = client.CoordinationV1Api(client.ApiClient(client.Configuration(host=cluster.url)))
    with node_lease(coordination, "kube-system", "airflow-a run-1", seconds=600, wait_s=0):
        with pytest.raises(LeaseHeld, match=r"^nodes are being maintained by airflow-a run-1 \(renewed .*, for 600s\)"):
            with node_lease(coordination, "kube-system", "airflow-b run-9", seconds=600, wait_s=0.3, poll_s=0.1):
                pass
    with node_lease(coordination, "kube-system", "airflow-b run-9", seconds=600, wait_s=0):  # released: free
        (lease,) = cluster.leases
        assert lease["spec"]["holderIdentity"] == "airflow-b run-9"
    # A holder that died stops renewing: once its lease has expired, another actor takes it.
    with node_lease(coordination, "kube-system", "dead run", seconds=60, wait_s=0,
                    now_fn=lambda: datetime.now(UTC) - timedelta(hours=1)):
        with node_lease(coordination, "kube-system", "airflow-b run-10", seconds=60, wait_s=0):
            assert cluster.leases[0]["spec"]["holderIdentity"] == "airflow-b run-10"
    stale = dict(cluster.leases[0], metadata=dict(cluster.leases[0]["metadata"], resourceVersion="1"))
    with pytest.raises(client.ApiException) as conflict:  # a write from a stale read is refused
        coordination.replace_namespaced_lease("pathfinity-maintenance-nodes", "kube-system", stale)
    assert conflict.value.status == 409


def test_node_maintenance_leaves_the_nodes_to_another_actor_holding_the_lease(k8s_conn, platform_db, airflow_db,
                                                                              slack, tmp_path, monkeypatch):
    from maintenance.kubernetes.lease import node_lease

    from tests.conftest import use_policy

    cluster = k8s_conn
    cluster.nodes = [node("node-a", marked=True), node("node-b")]
    # Forced past the window without the emergency approvals: this test is about the Lease.
    use_policy(tmp_path, monkeypatch, kubernetes={"nodes": {"lease_wait_seconds": 0.5}}, emergency={"approval": False})
    monkeypatch.setattr(clock, "now", lambda: NOW)
    coordination = client.CoordinationV1Api(client.ApiClient(client.Configuration(host=cluster.url)))
    with node_lease(coordination, "kube-system", "maintenance maintenance_kubernetes backfill__z node_maintenance",
                    seconds=3600, wait_s=0):
        result = run_dag("maintenance_kubernetes", datetime(2026, 12, 6, 7, 0, tzinfo=UTC),
                         {"dry_run": False, "force_reason": "CAB-12 kernel patch"})
    assert result.states["node_maintenance"] == "skipped", result.states
    assert result.xcom("node_maintenance", "outcome").startswith(
        "nodes are being maintained by maintenance maintenance_kubernetes backfill__z node_maintenance")
    assert not [r for r in cluster.mutations if "/nodes/" in r[1]]  # no node was touched


def test_a_budget_lets_one_pod_go_at_a_time_and_the_drain_waits_for_its_replacement(cluster):
    """disruptionsAllowed goes down as a pod is evicted and up once its replacement runs elsewhere;
    evicted pods take their grace period to go. The drain respects all of it and still finishes."""
    cluster.reboot_after_drain, cluster.recreate_after, cluster.grace_seconds = 0.1, 0.3, 0.2
    cluster.nodes = [node("node-a", marked=True), node("node-b")]
    cluster.pods = [pod(f"api-{i}", owner=("ReplicaSet", "api-1"), labels={"app": "api"}) for i in range(3)]
    cluster.poddisruptionbudgets = [pdb("api-pdb", "web", {"app": "api"}, 1)]
    url, server = start_kube_server(cluster)
    try:
        k = apis(url)
        run = nodes.maintain(k["core"], k["core"].read_node("node-a"),
                             FAST.model_copy(update={"drain_timeout_minutes": 0.2}), now_fn=lambda: NOW)
    finally:
        server.shutdown()
    assert run.ok, run.error
    evictions = [r for r in cluster.requests if r[0] == "POST" and r[1].endswith("/eviction")]
    assert len(evictions) > 3  # refused (429) while the budget was spent, retried
    assert run.steps[1] == "drained (3 pods evicted)"
    assert sorted((p["metadata"]["name"], p["spec"]["nodeName"]) for p in cluster.pods) == [
        ("api-0-r", "node-b"), ("api-1-r", "node-b"), ("api-2-r", "node-b")]
    assert cluster.poddisruptionbudgets[0]["status"]["disruptionsAllowed"] == 1
