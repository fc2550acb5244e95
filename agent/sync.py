"""What the node agent keeps programmed in its IPU beyond its own ports.

Cluster-wide caches (all pods, namespaces, nodes, Services, EndpointSlices,
NetworkPolicies) feed `agent.compile.compile_node`; watch events only mark the
`SyncLoop` dirty, and the loop writes the whole desired state as one diffed
P4Runtime batch (STYLE.md: decide, then program).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from agent.compile.node import compile_node
from agent.compile.objects import network_ids
from agent.sources import Reporter
from datapath.client.full import TableFull
from datapath.entries import Entry
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

    def desired(self, node: str) -> list[Entry]:
        pods = self.pods.items()
        return compile_node(
            node, pods=pods, namespaces=self.namespaces.items(), nodes=self.nodes.items(),
            services=self.services.items(), slices=self.slices.items(), policies=self.policies.items(),
            networks=network_ids(pods),
        )


def full_table_reporter(reporter: Reporter, view: ClusterView, node: str) -> Callable[[TableFull], None]:
    """What the sync loop calls when the target leaves entries out for a full
    table: the report the attach path makes (`Reporter.table_full`, an Event
    on the PodNetwork), for each network whose entries were left out."""
    def report(full: TableFull) -> None:
        names = {net_id: name for name, net_id in network_ids(view.pods.items()).items()}
        for network, message in full_table_reports(full, names, node):
            reporter.table_full(network, message)
    return report


def full_table_reports(full: TableFull, names: Mapping[int, str], node: str) -> list[tuple[str, str]]:
    """(PodNetwork name, message) per network of the report; networks no pod
    names (no object to tell) are only logged."""
    message = f"node {node}: {full.message}"
    unnamed = [net for net in full.networks if net not in names]
    if unnamed or not full.networks:
        log.warning("datapath: %s (networks without a name here: %s)", message, unnamed or "none known")
    return [(names[net], message) for net in full.networks if net in names]
