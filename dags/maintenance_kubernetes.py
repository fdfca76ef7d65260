"""Kubernetes maintenance (procedures 5.1), weekly on Sunday at 02:00: clean up finished
pods, restart workloads under memory pressure, maintain nodes one at a time (inside the
planned window only), and report on cluster hygiene."""

from airflow.sdk import chain
from maintenance import dagkit
from maintenance.kubernetes.operators import (
    KubernetesHygieneOperator,
    MemoryRestartOperator,
    NodeMaintenanceOperator,
    PodCleanupOperator,
)

with dagkit.maintenance_dag(
    "maintenance_kubernetes",
    cron="0 2 * * 0",
    title="Kubernetes maintenance",
    doc=__doc__,
    destructive=True,
    tags=["weekly", "kubernetes"],
) as dag:
    summary = dagkit.run_summary()

    # Deleting finished pods and rolling restarts keep every workload serving: zero-downtime.
    gate_pods = dagkit.gate("gate_pods")
    chain(gate_pods, [PodCleanupOperator(task_id="pod_cleanup"), MemoryRestartOperator(task_id="memory_restarts")],
          summary)

    # Draining takes capacity away: inside the planned window only, one node at a time.
    gate_window = dagkit.gate("gate_window", zero_downtime=False, affected_users=1_000_000)
    chain(gate_window, NodeMaintenanceOperator(task_id="node_maintenance", pool=dagkit.NODES_POOL), summary)

    # A read-only report: not gated.
    KubernetesHygieneOperator(task_id="hygiene") >> summary
