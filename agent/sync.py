"""What the node agent keeps programmed in its IPU beyond its own ports.

Cluster-wide caches (all pods, namespaces, nodes, Services, EndpointSlices,
NetworkPolicies) feed `agent.compile.NodeCompiler` (`compile_node`, kept
incrementally); watch events only mark the `SyncLoop` dirty, and the loop
writes the desired state as one P4Runtime batch, diffed over the keys the
change touched (STYLE.md: decide, then program).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.compile.incremental import NodeCompiler
from datapath.state import CompiledState
from kube import Change, Informer, Kube
from kube.informer import Informers
from kube.resources import ENDPOINT_SLICES, NAMESPACES, NETWORK_POLICIES, NODES, PODS, SERVICES

log = logging.getLogger(__name__)


class ClusterView:
    """Informer-style caches of what policy, Services and remote routes depend on."""

    def __init__(self, kube: Kube) -> None:
        self.pods = Informer(kube, PODS)
        self.namespaces = Informer(kube, NAMESPACES)
        self.nodes = Informer(kube, NODES)
        self.services = Informer(kube, SERVICES)
        self.slices = Informer(kube, ENDPOINT_SLICES)
        self.policies = Informer(kube, NETWORK_POLICIES)
        self._listeners: list[Callable[[], None]] = []
        self._compilers: dict[str, NodeCompiler] = {}
        self._caches = Informers(self.pods, self.namespaces, self.nodes, self.services, self.slices, self.policies)
        for cache in self._caches.all:
            cache.add_handler(self._notify)

    def subscribe(self, listener: Callable[[], None]) -> None:
        """`listener()` is called on every change; it must only mark work dirty."""
        self._listeners.append(listener)

    def _notify(self, change: Change) -> None:
        for listener in self._listeners:
            listener()

    def start(self) -> None:
        self._caches.start()

    def stop(self) -> None:
        self._caches.stop()

    def synced(self) -> bool:
        return self._caches.synced

    def desired(self, node: str) -> CompiledState:
        """The node's entries; one caller at a time (the sync loop)."""
        compiler = self._compilers.setdefault(node, NodeCompiler(node))
        return compiler.compile(
            pods=self.pods.items(), namespaces=self.namespaces.items(), nodes=self.nodes.items(),
            services=self.services.items(), slices=self.slices.items(), policies=self.policies.items(),
        )
