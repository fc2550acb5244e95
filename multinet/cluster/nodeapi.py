"""What the local cluster asks the apiserver about its nodes and pods
(one place, so the client library is used from one module here)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client import ApiException


@dataclass(frozen=True)
class PodPlace:
    node: str
    uid: str
    phase: str


class NodeApi:
    def __init__(self, kubeconfig: Path) -> None:
        api = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
        self.core = client.CoreV1Api(api)

    def _json(self, response: Any) -> Any:
        return json.loads(response.data)

    def ready(self) -> dict[str, bool]:
        """Each registered Node's Ready condition."""
        nodes = self._json(self.core.list_node(_preload_content=False))["items"]
        return {n["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                           for c in n.get("status", {}).get("conditions") or [])
                for n in nodes}

    def set_pod_cidr(self, name: str, cidr: str) -> None:
        """spec.podCIDR(s) as the node's primary conflist serves it (set once; immutable after)."""
        node = self._json(self.core.read_node(name, _preload_content=False))
        if node.get("spec", {}).get("podCIDR") != cidr:
            self.core.patch_node(name, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})

    def pod(self, namespace: str, name: str) -> PodPlace:
        """Where a pod runs; LookupError naming it if it does not exist."""
        try:
            pod = self._json(self.core.read_namespaced_pod(name, namespace, _preload_content=False))
        except ApiException as err:
            raise LookupError(f"pod {namespace}/{name}: {err.reason}") from None
        return PodPlace(pod["spec"].get("nodeName", ""), pod["metadata"]["uid"], pod.get("status", {}).get("phase", ""))
