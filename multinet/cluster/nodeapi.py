"""What the local cluster asks the apiserver about its nodes and pods (through kube/)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kube import Kube, KubeError
from kube.resources import NODES, PODS


@dataclass(frozen=True)
class PodPlace:
    node: str
    uid: str
    phase: str


class NodeApi:
    def __init__(self, kubeconfig: Path) -> None:
        self.kube = Kube.from_kubeconfig(str(kubeconfig))

    def ready(self) -> dict[str, bool]:
        """Each registered Node's Ready condition."""
        return {n["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                           for c in n.get("status", {}).get("conditions") or [])
                for n in self.kube.list(NODES)}

    def set_pod_cidr(self, name: str, cidr: str) -> None:
        """spec.podCIDR(s) as the node's primary conflist serves it (set once; immutable after)."""
        node = self.kube.get(NODES, name)
        if node.get("spec", {}).get("podCIDR") != cidr:
            self.kube.patch(NODES, name, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})

    def pod(self, namespace: str, name: str) -> PodPlace:
        """Where a pod runs; LookupError naming it if it cannot be read."""
        try:
            pod = self.kube.get(PODS, name, namespace)
        except KubeError as err:
            raise LookupError(f"pod {namespace}/{name}: {err}") from None
        return PodPlace(pod["spec"].get("nodeName", ""), pod["metadata"]["uid"], pod.get("status", {}).get("phase", ""))
