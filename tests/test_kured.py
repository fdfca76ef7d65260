"""kured's reboots follow the calendar: its lock (the annotation on its DaemonSet) is held
outside the planned window and in blackouts, released for the window, never taken from a node
that holds it, and never overwritten when kured changes it in between (the stand-in answers a
stale resourceVersion with 409, as the API server does)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from maintenance import clock
from maintenance.calendar import MaintenanceCalendar
from maintenance.kubernetes import kured
from maintenance.policy import load_policy

from devtools.kube_server import Cluster, kubernetes_connection, start_kube_server
from tests.conftest import set_conn, use_policy
from tests.support.airflow_runs import run_dag

IN_WINDOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)  # Sunday 03:00 New York, the December window
OUTSIDE = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)
IN_BLACKOUT = datetime(2026, 12, 27, 8, 0, tzinfo=UTC)  # a Sunday in the holidays


def daemonset(holder: str | None = None) -> dict:
    annotations = {"deprecated.daemonset.template.generation": "3"}
    if holder:
        annotations[kured.LOCK_ANNOTATION] = json.dumps({"nodeID": holder, "metadata": {"unschedulable": True},
                                                         "created": "2026-12-06T07:10:00Z", "TTL": 0})
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "kured", "namespace": "kube-system", "resourceVersion": "7",
                         "annotations": annotations},
            "spec": {"selector": {"matchLabels": {"name": "kured"}},
                     "template": {"metadata": {"labels": {"name": "kured"}},
                                  "spec": {"containers": [{"name": "kured",
                                                           "image": "ghcr.io/kubereboot/kured:1.17.1"}]}}}}


@pytest.fixture
def kured_cluster(tmp_path, monkeypatch, platform_db, slack, airflow_db):
    state = Cluster(daemonsets=[daemonset()])
    url, server = start_kube_server(state)
    set_conn("kubernetes_default", kubernetes_connection(url))
    use_policy(tmp_path, monkeypatch, kubernetes={"kured": {"enabled": True}})
    yield state
    server.shutdown()


def _holder(state: Cluster) -> str | None:
    raw = state.daemonsets[0]["metadata"].get("annotations", {}).get(kured.LOCK_ANNOTATION)
    return json.loads(raw)["nodeID"] if raw else None


def _run(monkeypatch, at: datetime, conf: dict | None = None):
    monkeypatch.setattr(clock, "now", lambda: at)
    return run_dag("maintenance_calendar_sync", at, conf or {})


def test_the_lock_is_held_outside_the_window_and_released_for_it(kured_cluster, monkeypatch, platform_db):
    result = _run(monkeypatch, OUTSIDE)
    assert result.states["kured_lock"] == "success" and _holder(kured_cluster) == kured.HOLDER
    kept = kured_cluster.daemonsets[0]["metadata"]["annotations"]
    assert kept["deprecated.daemonset.template.generation"] == "3"  # the other annotations stay
    assert json.loads(kept[kured.LOCK_ANNOTATION])["TTL"] == 0

    _run(monkeypatch, IN_WINDOW)
    assert _holder(kured_cluster) is None  # kured may reboot nodes now
    _run(monkeypatch, IN_WINDOW)  # again: nothing to change, nothing sent
    _run(monkeypatch, IN_BLACKOUT)
    assert _holder(kured_cluster) == kured.HOLDER
    changes = platform_db.execute("SELECT action, outcome FROM maintenance.actions WHERE target = "
                                  "'daemonset kube-system/kured' ORDER BY id")
    assert changes == [("kured_lock_hold", "applied"), ("kured_lock_release", "applied"),
                       ("kured_lock_hold", "applied")]
    puts = [r for r in kured_cluster.requests if r[0] == "PUT"]
    assert len(puts) == 3


def test_a_dry_run_plans_and_changes_nothing(kured_cluster, monkeypatch):
    result = _run(monkeypatch, OUTSIDE, {"dry_run": True})
    assert result.xcom("kured_lock")["want"] == "hold" and result.xcom("kured_lock")["change"]
    assert _holder(kured_cluster) is None
    assert [m for m, _ in kured_cluster.requests if m not in ("GET",)] == []


def test_a_lock_a_node_holds_is_kureds_and_is_left_alone(kured_cluster, monkeypatch, platform_db):
    kured_cluster.daemonsets[:] = [daemonset("node-b")]  # kured is rebooting node-b
    for at in (OUTSIDE, IN_WINDOW):
        result = _run(monkeypatch, at)
        assert result.states["kured_lock"] == "success"
        assert _holder(kured_cluster) == "node-b"
    assert [m for m, _ in kured_cluster.requests if m != "GET"] == []
    found = platform_db.execute("SELECT check_name, message FROM maintenance.findings WHERE check_name = "
                                "'kured_lock_busy' ORDER BY id DESC LIMIT 1")
    assert found[0][1].startswith("kured's lock is held by node-b (a reboot under way)")


def test_kured_taking_the_lock_between_plan_and_change_is_not_overwritten(kured_cluster):
    from kubernetes import client
    from maintenance.kubernetes.clients import clients

    apps = clients("kubernetes_default")["apps"]
    calendar = MaintenanceCalendar.from_policy(load_policy())
    lock = kured.plan(apps.read_namespaced_daemon_set("kured", "kube-system"), calendar, OUTSIDE)
    assert lock.want == "hold" and lock.change
    kured_cluster.daemonsets[:] = [daemonset("node-c")]  # kured took it meanwhile
    with pytest.raises(RuntimeError, match=r"kured's lock changed since it was planned \(None -> node-c\)"):
        kured.apply(apps, "kube-system", "kured", lock, OUTSIDE, "outside the window")
    assert _holder(kured_cluster) == "node-c"
    # And a change that lands between the read and the replace: the stale resourceVersion is refused.
    kured_cluster.daemonsets[:] = [daemonset()]
    stale = apps.read_namespaced_daemon_set("kured", "kube-system")
    kured_cluster.daemonsets[0]["metadata"]["resourceVersion"] = "8"
    stale.metadata.annotations = {kured.LOCK_ANNOTATION: "{}"}
    with pytest.raises(client.ApiException) as refused:
        apps.replace_namespaced_daemon_set("kured", "kube-system", stale)
    assert refused.value.status == 409 and _holder(kured_cluster) is None


def test_off_by_default_it_touches_no_cluster(kured_cluster, monkeypatch, tmp_path):
    use_policy(tmp_path, monkeypatch)
    result = _run(monkeypatch, OUTSIDE)
    assert result.states["kured_lock"] == "skipped" and kured_cluster.requests == []
