"""ClusterView compiles from the informers' events: what a LIST, a watch event or a
relist delivers reaches the node's compiler, and each `desired` equals the
from-scratch compile of what the caches hold.

The informers are the real ones, fed through their own list and watch paths
(`_replace`, `_apply`) in-process instead of from an apiserver: this checks the
plumbing from events to the compiler, which is pure logic.
"""

from __future__ import annotations

import copy
from typing import Any, cast

from agent.compile import compile_node, network_ids
from agent.compile.incremental import KINDS
from agent.sync import ClusterView
from datapath.state import CompiledState
from kube import Kube
from kube.watch import WatchEvent
from podnetwork.allocations import Allocation, encode_allocations
from podnetwork.names import (ALLOCATIONS_ANNOTATION, ENDPOINTSLICE_NETWORK_LABEL, POD_NETWORK_ANNOTATION,
                              SERVICE_VIP_ANNOTATION)

Obj = dict[str, Any]


def pod(name: str, node: str, address: str) -> Obj:
    allocation = Allocation("blue", "net1", 100, (f"{address}/24",))
    return {"metadata": {"name": name, "namespace": "prod", "resourceVersion": "1",
                         "annotations": {ALLOCATIONS_ANNOTATION: encode_allocations((allocation,))}},
            "spec": {"nodeName": node}, "status": {"phase": "Running"}}


def service(name: str, vip: str) -> Obj:
    return {"metadata": {"name": name, "namespace": "prod", "resourceVersion": "1",
                         "annotations": {POD_NETWORK_ANNOTATION: "blue", SERVICE_VIP_ANNOTATION: vip}},
            "spec": {"ports": [{"port": 80}]}}


def endpoints(name: str, *addresses: str) -> Obj:
    return {"metadata": {"name": f"{name}-blue", "namespace": "prod", "resourceVersion": "1", "labels": {
        "kubernetes.io/service-name": name, ENDPOINTSLICE_NETWORK_LABEL: "blue"}},
        "ports": [{"port": 8080}], "endpoints": [{"addresses": [a]} for a in addresses]}


def node(name: str, address: str) -> Obj:
    return {"metadata": {"name": name, "resourceVersion": "1"},
            "status": {"addresses": [{"type": "InternalIP", "address": address}]}}


def from_scratch(view: ClusterView) -> dict[object, Any]:
    listings = {kind: cache.items() for kind, cache in zip(KINDS, (view.pods, view.namespaces, view.nodes,
                                                                    view.services, view.slices, view.policies))}
    return {e.key: e for e in compile_node("n1", networks=network_ids(listings["pods"]), **listings)}


def check(view: ClusterView) -> CompiledState:
    state = view.desired("n1")
    assert dict(state.entries) == from_scratch(view)
    return state


def test_events_reach_the_compiler_and_only_their_keys_change() -> None:
    view = ClusterView(cast(Kube, None))  # never started: nothing dials an apiserver
    notified: list[None] = []
    view.subscribe(lambda: notified.append(None))
    view.pods._replace([pod("a", "n1", "10.1.0.2"), pod("b", "n2", "10.1.0.3")])
    view.nodes._replace([node("n2", "192.168.0.2")])
    view.services._replace([service("web", "10.96.0.1"), service("db", "10.96.0.2")])
    view.slices._replace([endpoints("web", "10.1.0.2"), endpoints("db", "10.1.0.3")])
    for cache in (view.namespaces, view.policies):
        cache._replace([])
    assert len(notified) == 7
    first = check(view)
    assert {e.table for e in first.entries.values()} == {"route", "service"} and len(first.entries) == 3

    moved = endpoints("web", "10.1.0.2", "10.1.0.3")
    view.slices._apply(WatchEvent("MODIFIED", moved))
    web = check(view)
    assert web.base == first.version and len(web.changed) == 1
    (key,) = web.changed
    assert len(web.entries[key].actions) == 2

    view.pods._apply(WatchEvent("DELETED", pod("b", "n2", "10.1.0.3")))
    gone = check(view)
    assert [k[0] for k in gone.changed] == ["route"]  # its route; the Services still list it

    # A relist without "db" reports it deleted; the equal copies of the rest change nothing.
    view.services._replace([copy.deepcopy(service("web", "10.96.0.1"))])
    relisted = check(view)
    assert len(relisted.changed) == 1 and key not in relisted.changed
    assert check(view).changed == frozenset()  # nothing happened since
