"""What the node agent keeps programmed in its IPU beyond its own ports.

Cluster-wide caches (all pods, namespaces, nodes, Services, EndpointSlices,
NetworkPolicies) feed `agent.compile.compile_node`; watch events only mark the
`SyncLoop` dirty, and the loop writes the whole desired state as one diffed
P4Runtime batch (STYLE.md: decide, then program).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kubernetes import client

from agent.compile.node import compile_node
from agent.compile.objects import network_ids
from agent.kube import _Cache, _raw
from datapath.entries import Entry

log = logging.getLogger(__name__)


class ClusterView:
    """Informer-style caches of what policy, Services and remote routes depend on."""

    def __init__(self, api: client.ApiClient, stop: threading.Event) -> None:
        core = client.CoreV1Api(api)
        discovery = client.DiscoveryV1Api(api)
        networking = client.NetworkingV1Api(api)
        self._stop = stop
        self._on_change = threading.Event()
        notify = self._notify
        self.pods = _Cache("pods", _raw(core.list_pod_for_all_namespaces), stop, notify)
        self.namespaces = _Cache("namespaces", _raw(core.list_namespace), stop, notify)
        self.nodes = _Cache("nodes", _raw(core.list_node), stop, notify)
        self.services = _Cache("services", _raw(core.list_service_for_all_namespaces), stop, notify)
        self.slices = _Cache("endpointslices", _raw(discovery.list_endpoint_slice_for_all_namespaces), stop, notify)
        self.policies = _Cache("networkpolicies", _raw(networking.list_network_policy_for_all_namespaces), stop, notify)
        self._listeners: list[Any] = []

    def subscribe(self, listener: Any) -> None:
        """`listener()` is called on every change; it must only mark work dirty."""
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()

    def start(self) -> None:
        for cache in (self.pods, self.namespaces, self.nodes, self.services, self.slices, self.policies):
            threading.Thread(target=cache.run, name=f"watch-{cache.kind}", daemon=True).start()

    def synced(self) -> bool:
        return all(c.synced.is_set() for c in
                   (self.pods, self.namespaces, self.nodes, self.services, self.slices, self.policies))

    def desired(self, node: str) -> list[Entry]:
        pods = self.pods.items()
        return compile_node(
            node, pods=pods, namespaces=self.namespaces.items(), nodes=self.nodes.items(),
            services=self.services.items(), slices=self.slices.items(), policies=self.policies.items(),
            networks=network_ids(pods),
        )
