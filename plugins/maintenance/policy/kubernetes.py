"""Kubernetes: pod clean-up, memory restarts, node maintenance."""

from __future__ import annotations

from pydantic import Field

from maintenance.policy.base import _Strict


class PodCleanup(_Strict):
    min_age_minutes: float = Field(60, ge=0)
    max_per_namespace: int = Field(200, gt=0)
    max_per_run: int = Field(1000, gt=0)


class MemoryRestarts(_Strict):
    threshold: float = Field(0.9, gt=0, le=1, description="memory use over this share of the limit")
    max_per_run: int = Field(3, ge=0)


class NodeMaintenance(_Strict):
    """Which nodes need maintenance, and how one is taken out, maintained and brought back."""

    reboot_marker: str = Field("pathfinity.com/reboot-required",
                               description="a node label or annotation with this key marks it")
    conditions: list[str] = Field([], description="node condition types that, when True, mark it")
    min_kubelet_version: str | None = Field(None, description="older kubelets mark the node, e.g. v1.29.0")
    drain_timeout_minutes: float = Field(15, gt=0)
    eviction_retry_seconds: float = Field(5, gt=0)
    action_timeout_minutes: float = Field(30, gt=0, description="wait for the external agent's reboot")
    ready_timeout_minutes: float = Field(15, gt=0)
    uncordon_on_failure: bool = True
    max_nodes_per_run: int = Field(1, gt=0, description="maintained one after another, never two at once")
    min_ready_nodes: int = Field(1, ge=0, description="other Ready, schedulable nodes a drain must leave")
    lease_namespace: str = Field("kube-system", min_length=1, description="where the node Lease lives")
    lease_wait_seconds: float = Field(300, ge=0, description="wait for another actor's node Lease, then skip")
    max_pending_pods: int = Field(0, ge=0, description="cluster health: pods Pending longer than...")
    pending_grace_minutes: float = Field(5, ge=0)


class Kured(_Strict):
    """kured, when the cluster reboots its nodes with it: its lock is held outside the planned
    window and in blackouts, released for the window (maintenance.kubernetes.kured)."""

    enabled: bool = Field(False, description="govern kured's reboots by the calendar; off: the project's own "
                                             "node maintenance (drain, reboot, uncordon) is the only path")
    namespace: str = Field("kube-system", min_length=1)
    daemonset: str = Field("kured", min_length=1)


class Kubernetes(_Strict):
    conn_id: str = "kubernetes_default"
    min_kernel_version: str | None = Field(None, description="Tuesday's patch review: older node kernels")
    namespaces: list[str] = Field([], description="empty: every namespace but the excluded ones")
    excluded_namespaces: list[str] = ["kube-system"]
    pod_cleanup: PodCleanup = PodCleanup()
    memory_restarts: MemoryRestarts = MemoryRestarts()
    nodes: NodeMaintenance = NodeMaintenance()
    kured: Kured = Kured()
    request_use_ratio: float = Field(0.3, gt=0, le=1, description="hygiene: use below this share of requests")
