"""Tuesday's security patch assessment of the Kubernetes nodes (procedures 2.2).

Nodes carry their patch state: the reboot marker an agent sets once patches wait for a
reboot, the kernel and kubelet they run, and their OS image. The assessment lists each node's
state and finds nodes waiting for a reboot (the Sunday node maintenance reboots them in the
window), kernels and kubelets older than the policy's minimums, and nodes that drifted apart
(more than one OS image and kernel in the cluster). It reads only.
"""

from __future__ import annotations

from collections import defaultdict

from maintenance.findings import Finding
from maintenance.kubernetes.nodes import ready, reasons
from maintenance.security.versions import numbers


def assess(core, settings) -> tuple[list[dict], list[Finding]]:
    """(each node's patch state, findings) under the policy's ``kubernetes`` section."""
    nodes, findings = [], []
    images: dict[tuple[str, str], list[str]] = defaultdict(list)
    for node in core.list_node().items:
        name, info = node.metadata.name, node.status.node_info
        kernel, kubelet = info.kernel_version, info.kubelet_version
        due = reasons(node, settings.nodes)
        nodes.append({"node": name, "os_image": info.os_image, "kernel": kernel, "kubelet": kubelet,
                      "container_runtime": info.container_runtime_version, "ready": ready(node),
                      "maintenance_due": due})
        images[(info.os_image, kernel)].append(name)
        if any(r.startswith("marked ") for r in due):
            findings.append(Finding("patch_reboot_pending", name, "info",
                                    "patches wait for a reboot: the Sunday node maintenance takes it in the window"))
        if settings.min_kernel_version and numbers(kernel) < numbers(settings.min_kernel_version):
            findings.append(Finding("kernel_outdated", name, "warning",
                                    f"kernel {kernel} is older than the policy's minimum {settings.min_kernel_version}:"
                                    " patch the image, then mark the node for a reboot"))
        if settings.nodes.min_kubelet_version and numbers(kubelet) < numbers(settings.nodes.min_kubelet_version):
            findings.append(Finding("kubelet_outdated", name, "warning",
                                    f"kubelet {kubelet} is older than {settings.nodes.min_kubelet_version}"))
    if len(images) > 1:
        groups = "; ".join(f"{image} / {kernel}: {', '.join(sorted(names))}"
                           for (image, kernel), names in sorted(images.items()))
        findings.append(Finding("node_image_drift", "cluster", "info",
                                f"{len(images)} OS image and kernel pairs across the nodes ({groups})"))
    return nodes, findings
