"""Kubernetes operators: thin wiring of the engines to KubernetesHook's API client."""

from __future__ import annotations

from maintenance.operator import MaintenanceOperator


class _KubernetesOperator(MaintenanceOperator):
    def clients(self, policy):
        import time

        began = time.monotonic()
        # The provider's hook and the Kubernetes client take seconds to import on a busy
        # worker (the hook module also loads the asyncio client): say so, and how long.
        self.log.info("Loading the Kubernetes client and KubernetesHook")
        from maintenance.kubernetes.clients import clients

        found = clients(policy.kubernetes.conn_id)
        self.log.info("Kubernetes API client for connection %s at %s (%.1fs)", policy.kubernetes.conn_id,
                      found["core"].api_client.configuration.host, time.monotonic() - began)
        return found


class PodCleanupOperator(_KubernetesOperator):
    """Delete Evicted, Failed and Succeeded pods older than the policy's age, in its namespaces."""

    def run(self, run):
        from maintenance import clock
        from maintenance.kubernetes.pods import finished_pods

        policy = run.policy
        k = self.clients(policy)
        chosen, kept = finished_pods(k["core"], k["batch"], policy.kubernetes, clock.now())
        deleted = []
        self.log.info("Finished pods: %d to delete, %d kept", len(chosen), len(kept))
        for pod in chosen:
            self.log.info("%s pod %s/%s (%s)", "Would delete" if run.dry_run else "Deleting", pod.namespace, pod.name,
                          pod.as_dict())
            with run.ledger.action("kubernetes", f"pod {pod.namespace}/{pod.name}", "delete_pod", plan=pod.as_dict()):
                if not run.dry_run:
                    k["core"].delete_namespaced_pod(pod.name, pod.namespace)
                    deleted.append(f"{pod.namespace}/{pod.name}")
        return {"chosen": [p.as_dict() for p in chosen], "kept": [p.as_dict() for p in kept], "deleted": deleted}

    def describe(self, summary):
        return (f"{len(summary['deleted'])} of {len(summary['chosen'])} finished pods deleted, "
                f"{len(summary['kept'])} kept")


class MemoryRestartOperator(_KubernetesOperator):
    """Rollout-restart the Deployments and StatefulSets whose pods pass 90% of their memory limit."""

    def run(self, run):
        from maintenance import clock
        from maintenance.kubernetes.pods import memory_pressure, rollout_restart

        policy = run.policy
        k = self.clients(policy)
        found = memory_pressure(k["core"], k["apps"], k["custom"], k["policy"], policy.kubernetes)
        self.log.info("Workloads near their memory limit: %d", len(found))
        cap = policy.kubernetes.memory_restarts.max_per_run
        restarted = []
        for item in found:
            self.log.info("%s %s/%s: %s %s", item.kind or "bare pod", item.namespace, item.name, item.why, item.pods)
            if not item.restart:
                run.ledger.record_finding("memory_pressure", f"{item.namespace}/{item.name}", "warning", item.why,
                                          item.as_dict())
                continue
            if len(restarted) >= cap:
                item.why += f"; not restarted: the cap of {cap} per run was reached"
                continue
            self.log.info("%s %s %s/%s", "Would restart" if run.dry_run else "Rollout-restarting", item.kind,
                          item.namespace, item.name)
            with run.ledger.action("kubernetes", f"{item.kind} {item.namespace}/{item.name}", "rollout_restart",
                                   plan=item.as_dict()):
                if not run.dry_run:
                    rollout_restart(k["apps"], item, clock.now())
                    restarted.append(f"{item.kind} {item.namespace}/{item.name}")
        return {"found": [i.as_dict() for i in found], "restarted": restarted}

    def describe(self, summary):
        return f"{len(summary['restarted'])} workloads restarted, {len(summary['found'])} under memory pressure"


class NodeMaintenanceOperator(_KubernetesOperator):
    """Nodes that need maintenance, strictly one at a time; the run stops at the first failure."""

    def run(self, run):
        from maintenance import clock
        from maintenance.kubernetes import nodes

        policy = run.policy
        k = self.clients(policy)
        settings = policy.kubernetes.nodes
        due = [(n, nodes.reasons(n, settings)) for n in k["core"].list_node().items]
        due = [(n, why) for n, why in due if why]
        self.log.info("Nodes needing maintenance: %s", [(n.metadata.name, why) for n, why in due] or "none")
        if run.dry_run or not due:  # nothing to take the nodes' lease for
            return {"due": [{"node": n.metadata.name, "reasons": why} for n, why in due], "runs": []}
        from airflow.sdk.exceptions import AirflowSkipException

        from maintenance.kubernetes.lease import LeaseHeld, node_lease
        from maintenance.ledger import holder_name

        runs = []
        # As long as one node's maintenance may take, for every node this run may do.
        seconds = int(60 * (settings.drain_timeout_minutes + settings.action_timeout_minutes
                            + settings.ready_timeout_minutes + 5) * min(len(due), settings.max_nodes_per_run))
        try:
            with node_lease(k["coordination"], settings.lease_namespace, holder_name(run.ledger.key),
                            seconds=max(seconds, 60), wait_s=settings.lease_wait_seconds):
                for node, _ in due[:settings.max_nodes_per_run]:
                    runs.append(self.maintain_one(k, node, settings, run, nodes, clock))
        except LeaseHeld as exc:  # another actor is on the nodes: leave them to it, say who
            raise AirflowSkipException(str(exc)) from exc
        return {"due": [{"node": n.metadata.name, "reasons": why} for n, why in due], "runs": runs}

    def maintain_one(self, k, node, settings, run, nodes, clock) -> dict:
        self.log.info("Maintaining node %s: cordon, drain, wait for the reboot, Ready, uncordon", node.metadata.name)
        longest = 60 * (settings.drain_timeout_minutes + settings.action_timeout_minutes
                        + settings.ready_timeout_minutes)
        with run.step("kubernetes", f"node {node.metadata.name}", "node_maintenance", expected_seconds=longest) as act:
            maintained = nodes.maintain(k["core"], node, settings, now_fn=clock.now)
            act.plan = maintained.as_dict()
            if not maintained.ok:
                act.outcome, act.error = "failed", maintained.error
        self.log.info("%s: %s", maintained.node, " -> ".join(maintained.steps))
        if not maintained.ok:
            raise RuntimeError(f"node {maintained.node}: stopped at {maintained.stopped_at}: {maintained.error}"
                               + ("; the node is schedulable again" if maintained.uncordoned else
                                  "; the node is left cordoned (kubernetes.nodes.uncordon_on_failure)"))
        return maintained.as_dict()

    def describe(self, summary):
        return f"{len(summary['runs'])} node(s) maintained of {len(summary['due'])} due"


class KubernetesHygieneOperator(_KubernetesOperator):
    """Weekly report: volumes, network policies, requests and limits, requests far above use."""

    def run(self, run):
        from maintenance.kubernetes.hygiene import report

        policy = run.policy
        k = self.clients(policy)
        found = report(k["core"], k["apps"], k["networking"], k["custom"], policy.kubernetes)
        for key, items in found.items():
            self.log.info("%s: %s", key.replace("_", " "), items or "none")
            if items:
                run.ledger.record_finding(f"k8s_{key}", "cluster", "info", f"{len(items)} item(s)", {"items": items})
        return found

    def describe(self, summary):
        return ", ".join(f"{len(v)} {k.replace('_', ' ')}" for k, v in summary.items() if isinstance(v, list))


class PatchReviewOperator(_KubernetesOperator):
    """Tuesday: each node's patch state (reboot pending, kernel, kubelet, OS image), read-only."""

    def run(self, run):
        from maintenance.kubernetes.patches import assess

        policy = run.policy
        k = self.clients(policy)
        nodes, findings = assess(k["core"], policy.kubernetes)
        run.ledger.record_findings(findings)
        return {"nodes": nodes, "findings": [f.as_dict() for f in findings]}

    def describe(self, summary):
        pending = sum(f["check"] == "patch_reboot_pending" for f in summary["findings"])
        return f"{len(summary['nodes'])} nodes: {pending} waiting for a reboot, {len(summary['findings'])} findings"


class KuredLockOperator(_KubernetesOperator):
    """Hold kured's reboot lock outside the planned window and in blackouts; release it for the
    window (maintenance.kubernetes.kured). Plan, then (not in a dry run) replace the DaemonSet's
    annotation at its resourceVersion, read it back, record the change in the ledger. A lock a
    node holds is left to kured, with a finding."""

    def run(self, run):
        from airflow.sdk.exceptions import AirflowSkipException

        from maintenance import clock
        from maintenance.calendar import MaintenanceCalendar
        from maintenance.kubernetes import kured

        policy, now = run.policy, clock.now()
        settings = policy.kubernetes.kured
        if not settings.enabled:
            raise AirflowSkipException("kubernetes.kured.enabled is off: nodes are rebooted by node_maintenance only")
        apps = self.clients(policy)["apps"]
        target = f"daemonset {settings.namespace}/{settings.daemonset}"
        lock = kured.plan(apps.read_namespaced_daemon_set(settings.daemonset, settings.namespace),
                          MaintenanceCalendar.from_policy(policy), now)
        self.log.info("kured lock on %s: want %s (%s); held by %s", target, lock.want, lock.why, lock.holder)
        summary = lock.as_dict() | {"target": target, "changed": False}
        if lock.blocked:
            run.ledger.record_finding("kured_lock_busy", target, "info", lock.blocked, lock.as_dict())
            return summary
        if not lock.change or run.dry_run:
            return summary
        with run.ledger.action("kubernetes", target, f"kured_lock_{lock.want}", plan=lock.as_dict()):
            kured.apply(apps, settings.namespace, settings.daemonset, lock, now, lock.why)
            after = kured.holder_of(apps.read_namespaced_daemon_set(settings.daemonset, settings.namespace))
            if (after == kured.HOLDER) != (lock.want == "hold"):
                raise RuntimeError(f"{target}: kured's lock is held by {after} after the change to {lock.want}")
        return summary | {"changed": True}

    def describe(self, summary):
        if summary.get("blocked"):
            return summary["blocked"]
        state = "held" if summary["want"] == "hold" else "released"
        return f"kured's lock {state} ({summary['why']})" + ("" if summary["changed"] else ", unchanged")
