"""What the node agent keeps programmed in its IPU beyond its own ports.

Cluster-wide caches (all pods, namespaces, nodes, Services, EndpointSlices,
NetworkPolicies) feed `agent.compile.NodeCompiler` (`compile_node`, kept
incrementally); watch events only note the object that changed and mark the
`SyncLoop` dirty, and the loop compiles what changed and writes it as one
P4Runtime batch, diffed over the keys the change touched (STYLE.md: decide,
then program).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping

from agent.compile.incremental import KINDS, NodeCompiler
from agent.compile.objects import Obj, network_ids
from agent.sources import Reporter
from datapath.client.full import TableFull
from datapath.state import CompiledState
from kube import Change, Informer, Kube
from kube.informer import Informers, key_of
from kube.resources import ENDPOINT_SLICES, NAMESPACES, NETWORK_POLICIES, NODES, PODS, SERVICES

log = logging.getLogger(__name__)


Pending = dict[str, dict[tuple[str, str], Obj | None]]  # kind -> (namespace, name) -> the object now, None: gone


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
        self._kinds = dict(zip(KINDS, (self.pods, self.namespaces, self.nodes, self.services, self.slices,
                                       self.policies)))
        self._caches = Informers(*self._kinds.values())
        self._lock = threading.Lock()
        self._compilers: dict[str, tuple[NodeCompiler, Pending]] = {}
        for kind, cache in self._kinds.items():
            cache.add_handler(functools.partial(self._record, kind))

    def subscribe(self, listener: Callable[[], None]) -> None:
        """`listener()` is called on every change; it must only mark work dirty."""
        self._listeners.append(listener)

    def _record(self, kind: str, change: Change) -> None:
        """Note what changed for each node's compiler (the next `desired` compiles it), then notify."""
        with self._lock:
            for _, pending in self._compilers.values():
                pending[kind][key_of(change.obj)] = None if change.deleted else change.obj
        for listener in self._listeners:
            listener()

    def start(self) -> None:
        self._caches.start()

    def stop(self) -> None:
        self._caches.stop()

    def synced(self) -> bool:
        return self._caches.synced

    def desired(self, node: str) -> CompiledState:
        """The node's entries, compiled from what changed since the last call (the first
        call, and the first after a failed one, from the whole caches); one caller at a
        time (the sync loop). A change noted and also listed is compiled twice, harmlessly."""
        with self._lock:
            compiler, pending = self._compilers.setdefault(node, (NodeCompiler(node), _empty()))
            self._compilers[node] = (compiler, _empty())
        if compiler.version is not None:
            return compiler.apply(pending)
        return compiler.compile(**{kind: cache.items() for kind, cache in self._kinds.items()})


def _empty() -> Pending:
    return {kind: {} for kind in KINDS}


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
