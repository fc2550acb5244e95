"""The incremental node compiler equals the from-scratch compile after every change.

A hypothesis state machine adds, replaces and deletes pods, namespaces,
nodes, Services, EndpointSlices and NetworkPolicies (and with the pods'
allocations, networks and their ids) drawn from small pools, so objects
collide: two pods on one address, two Services on one VIP, a network whose
pods disagree on its id, policies reading peers across namespaces. After
every step `NodeCompiler.compile` of the listings (shuffled, as caches list
them in any order), and `NodeCompiler.apply` of the changes alone, equal
`compile_node` of the same listings, key by key, and the keys they report
changed carry their previous state to the new one.
"""

from __future__ import annotations

import collections
import copy
import json
import random
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from agent.compile import NodeCompiler, compile_node, network_ids
from datapath.entries import Entry, Exact, ip
from datapath.state import Key
from podnetwork.allocations import Allocation, encode_allocations
from podnetwork.names import (ALLOCATIONS_ANNOTATION, ENDPOINTSLICE_NETWORK_LABEL, NETWORK_STATUS_ANNOTATION,
                              POD_NETWORK_ANNOTATION, SERVICE_VIP_ANNOTATION)

NODE = "n1"
NAMES = st.sampled_from(["a", "b", "c"])
NAMESPACES = st.sampled_from(["prod", "dev"])
LABELS = st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["x", "y"]), max_size=2)
NETWORKS = st.sampled_from([("blue", 100), ("blue", 101), ("red", 200), ("l2", 300)])
V4 = st.sampled_from(["10.1.0.1", "10.1.0.2", "10.2.0.9"])
V6 = st.sampled_from(["fd00::1", "fd00::2"])
Obj = dict[str, Any]


def meta(name: str, namespace: str | None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, **fields}
    if namespace is not None:
        out["namespace"] = namespace
    return out


@st.composite
def pods(draw: st.DrawFn) -> Obj:
    allocations: list[Allocation] = []
    for network, net in draw(st.lists(NETWORKS, min_size=draw(st.sampled_from([0, 1, 1, 1])), max_size=2,
                                      unique_by=lambda n: n[0])):
        ips = () if network == "l2" else tuple(f"{a}/24" for a in draw(st.lists(V4, min_size=1, max_size=1)))
        if network != "l2" and draw(st.booleans()):
            ips += (f"{draw(V6)}/64",)
        allocations.append(Allocation(network, f"net{len(allocations) + 1}", net, ips))
    annotations = {ALLOCATIONS_ANNOTATION: encode_allocations(tuple(allocations))}
    if allocations and not draw(st.integers(0, 3)):  # attached: network-status wins, here with another address
        first = allocations[0]
        annotations[NETWORK_STATUS_ANNOTATION] = json.dumps([{
            "podNetworkName": first.pod_network_name, "interfaceName": first.interface_name,
            "ips": [f"{draw(V4)}/24"] if first.ips else []}])
    ports = draw(st.dictionaries(st.sampled_from(["http", "dns"]), st.sampled_from([80, 8080, 53]), max_size=2))
    return {"metadata": meta(draw(NAMES), draw(NAMESPACES), labels=draw(LABELS), annotations=annotations),
            "spec": {"nodeName": draw(st.sampled_from(["n1", "n1", "n2", "n3", ""])),
                     "containers": [{"name": "c", "ports": [{"name": n, "containerPort": p} for n, p in ports.items()]}]},
            "status": {"phase": draw(st.sampled_from(["Running", "Running", "Succeeded", "Pending"]))}}


@st.composite
def namespaces(draw: st.DrawFn) -> Obj:
    return {"metadata": meta(draw(NAMESPACES), None, labels=draw(LABELS))}


@st.composite
def nodes(draw: st.DrawFn) -> Obj:
    name = draw(st.sampled_from(["n1", "n2", "n3"]))
    own = f"192.168.0.{name[1]}"  # mostly each node its own address; sometimes another's, or only IPv6
    address = draw(st.sampled_from([own, own, own, "192.168.0.2", "fd01::3"]))
    addresses = [{"type": "InternalIP", "address": address}]
    return {"metadata": meta(name, None),
            "status": {"addresses": addresses if draw(st.integers(0, 4)) else []}}


PORT_NAMES = st.sampled_from(["", "", "", "", "http"])
PROTOCOLS = st.sampled_from(["TCP", "TCP", "TCP", "TCP", "TCP", "TCP", "UDP", "SCTP"])
MOSTLY_PROD = st.sampled_from(["prod", "prod", "prod", "dev"])


@st.composite
def services(draw: st.DrawFn) -> Obj:
    network = draw(st.sampled_from(["blue", "blue", "red", "l2", None]))
    annotations = {POD_NETWORK_ANNOTATION: network} if network else {}
    if draw(st.integers(0, 3)):
        annotations[SERVICE_VIP_ANNOTATION] = ",".join(draw(st.lists(st.sampled_from(["10.96.0.1", "10.96.0.2", "fd96::1"]),
                                                                     min_size=1, max_size=2)))
    spec: dict[str, Any] = {"clusterIPs": draw(st.lists(st.sampled_from(["10.96.0.1", "fd96::1"]), max_size=2)),
                            "ports": [{"name": draw(PORT_NAMES), "port": draw(st.sampled_from([80, 53])),
                                       "protocol": draw(PROTOCOLS)}]}
    if draw(st.booleans()):
        spec["ipFamilyPolicy"] = draw(st.sampled_from(["SingleStack", "PreferDualStack"]))
    return {"metadata": meta(draw(NAMES), draw(MOSTLY_PROD), annotations=annotations), "spec": spec}


@st.composite
def slices(draw: st.DrawFn) -> Obj:
    endpoints = [{"addresses": [draw(st.one_of(V4, V4, V6))],
                  "conditions": {"ready": draw(st.sampled_from([True, True, False, None]))}}
                 for _ in range(draw(st.sampled_from([0, 1, 2, 2, 3])))]
    labels = {"kubernetes.io/service-name": draw(NAMES), ENDPOINTSLICE_NETWORK_LABEL: draw(st.sampled_from(["blue", "blue", "red"]))}
    return {"metadata": meta(f"e-{draw(NAMES)}", draw(MOSTLY_PROD), labels=labels), "endpoints": endpoints,
            "ports": [{"name": draw(PORT_NAMES), "port": draw(st.sampled_from([8080, 5353])), "protocol": draw(PROTOCOLS)}]}


@st.composite
def peers(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["pods", "namespaces", "both", "ipBlock"]))
    if kind == "ipBlock":
        return {"ipBlock": {"cidr": draw(st.sampled_from(["10.1.0.0/16", "10.0.0.0/8", "fd00::/64"])),
                            "except": draw(st.lists(st.sampled_from(["10.1.0.0/24", "10.1.0.2/32"]), max_size=1))}}
    out: dict[str, Any] = {}
    if kind in ("pods", "both"):
        out["podSelector"] = {"matchLabels": draw(LABELS)}
    if kind in ("namespaces", "both"):
        out["namespaceSelector"] = {"matchLabels": draw(LABELS)}
    return out


@st.composite
def rules(draw: st.DrawFn, direction: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.sampled_from([True, True, False])):
        out["from" if direction == "ingress" else "to"] = draw(st.lists(peers(), min_size=1, max_size=2))
    ports = st.fixed_dictionaries({"port": st.sampled_from([80, "http", "dns", 53])},
                                  optional={"protocol": st.sampled_from(["TCP", "UDP"])})
    if draw(st.booleans()):
        out["ports"] = draw(st.lists(ports, max_size=2))
    return out


@st.composite
def policies(draw: st.DrawFn) -> Obj:
    spec: dict[str, Any] = {"podSelector": {"matchLabels": draw(LABELS)}}
    for direction in ("ingress", "egress"):
        if draw(st.sampled_from([True, True, False])):
            spec[direction] = draw(st.lists(rules(direction), min_size=draw(st.sampled_from([0, 1, 1])), max_size=2))
    if draw(st.booleans()):
        spec["policyTypes"] = draw(st.lists(st.sampled_from(["Ingress", "Egress"]), min_size=1, max_size=2, unique=True))
    network = draw(st.sampled_from(["blue", "red", "l2", None]))
    annotations = {POD_NETWORK_ANNOTATION: network} if network else {}
    return {"metadata": meta(f"q-{draw(NAMES)}", draw(NAMESPACES), annotations=annotations), "spec": spec}


SEEN: collections.Counter[str] = collections.Counter()  # entries per table over a run: the test is not vacuous
KINDS = {"pods": pods(), "namespaces": namespaces(), "nodes": nodes(), "services": services(), "slices": slices(),
         "policies": policies()}


def by_key(entries: list[Entry]) -> dict[Key, Entry]:
    out: dict[Key, Entry] = {}
    for e in entries:
        assert e.key not in out, f"two entries for {e.key}"
        out[e.key] = e
    return out


def key(obj: Obj) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


class Equivalence(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[str, dict[tuple[str, str], Obj]] = {kind: {} for kind in KINDS}
        self.compiler = NodeCompiler(NODE)  # fed the whole listings
        self.fed = NodeCompiler(NODE)  # fed the changes alone, as the agent's caches tell them
        self.pending: dict[str, dict[tuple[str, str], Obj | None]] = {kind: {} for kind in KINDS}
        self.shown: dict[str, dict[Key, Entry]] = {"listings": {}, "changes": {}}
        self.order = random.Random(0)

    def record(self, kind: str, k: tuple[str, str], obj: Obj | None) -> None:
        if obj is None:
            del self.objects[kind][k]
        else:
            self.objects[kind][k] = obj
        self.pending[kind][k] = obj

    @initialize(data=st.data())
    def populate(self, data: st.DataObject) -> None:
        """A few of every kind to start from, so most steps change something that has entries."""
        for kind, strategy in KINDS.items():
            for obj in data.draw(st.lists(strategy, min_size=2, max_size=5)):
                self.record(kind, key(obj), obj)

    @rule(data=st.data(), kind=st.sampled_from(sorted(KINDS)))
    def put(self, data: st.DataObject, kind: str) -> None:
        obj = data.draw(KINDS[kind])
        self.record(kind, key(obj), obj)

    @rule(data=st.data(), kind=st.sampled_from(sorted(KINDS)))
    def delete(self, data: st.DataObject, kind: str) -> None:
        if self.objects[kind]:
            self.record(kind, data.draw(st.sampled_from(sorted(self.objects[kind]))), None)

    @rule(data=st.data(), kind=st.sampled_from(sorted(KINDS)))
    def relist(self, data: st.DataObject, kind: str) -> None:
        """An equal object under a new dict, as a relist or a status-only update hands over."""
        if self.objects[kind]:
            k = data.draw(st.sampled_from(sorted(self.objects[kind])))
            self.record(kind, k, copy.deepcopy(self.objects[kind][k]))

    def listings(self) -> dict[str, list[Obj]]:
        out = {}
        for kind, objs in self.objects.items():
            items = list(objs.values())
            self.order.shuffle(items)
            out[kind] = items
        return out

    @invariant()
    def equals_a_from_scratch_compile(self) -> None:
        listings = self.listings()
        expected = by_key(compile_node(NODE, networks=network_ids(listings["pods"]), **listings))
        pending, self.pending = self.pending, {kind: {} for kind in KINDS}
        states = {"listings": self.compiler.compile(**listings),
                  "changes": self.fed.apply(pending) if self.fed.version is not None else self.fed.compile(**listings)}
        for how, state in states.items():
            assert dict(state.entries) == expected, how
            carried = dict(self.shown[how])  # the previous state, carried forward by the changed keys alone
            for k in state.changed:
                if k in state.entries:
                    carried[k] = state.entries[k]
                else:
                    carried.pop(k, None)
            assert carried == expected, how
            self.shown[how] = dict(state.entries)
        SEEN.update(e.table for e in expected.values())


def test_incremental_compile_equals_from_scratch() -> None:
    SEEN.clear()
    run_state_machine_as_test(Equivalence, settings=settings(max_examples=150, stateful_step_count=40, deadline=None,
                                                             # One fixed sequence: the coverage check below
                                                             # is then a fact of the test, not of a run's luck.
                                                             derandomize=True,
                                                             suppress_health_check=[HealthCheck.too_slow]))
    tables = {"route", "route6", "flood", "service", "service6", "policy_pod", "policy_pod6", "policy_rule",
              "policy_rule6"}
    assert tables <= set(SEEN), f"tables never compiled: {tables - set(SEEN)} ({dict(SEEN)})"


def test_from_scratch_compile_does_not_depend_on_listing_order() -> None:
    """Objects that claim one entry are resolved in key order: any listing order gives one result."""
    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def check(listings: dict[str, list[Obj]], seed: int) -> None:
        first = by_key(compile_node(NODE, networks=network_ids(listings["pods"]), **listings))
        for items in listings.values():
            random.Random(seed).shuffle(items)
        assert by_key(compile_node(NODE, networks=network_ids(listings["pods"]), **listings)) == first

    from hypothesis import given

    given(st.fixed_dictionaries({kind: st.lists(strategy, max_size=6, unique_by=key) for kind, strategy in KINDS.items()}),
          st.integers(0, 1000))(check)()


def pod_on(name: str, node: str, address: str, network: tuple[str, int] = ("blue", 100)) -> Obj:
    allocation = Allocation(network[0], "net1", network[1], (f"{address}/24",))
    return {"metadata": meta(name, "prod", annotations={ALLOCATIONS_ANNOTATION: encode_allocations((allocation,))}),
            "spec": {"nodeName": node}, "status": {"phase": "Running"}}


def node_at(name: str, address: str) -> Obj:
    return {"metadata": meta(name, None), "status": {"addresses": [{"type": "InternalIP", "address": address}]}}


def compiled(compiler: NodeCompiler, **given: list[Obj]) -> dict[Key, Entry]:
    """The incremental result, checked against the from-scratch compile of the same listings."""
    listings = {kind: given.get(kind, []) for kind in KINDS}
    got = dict(compiler.compile(**listings).entries)
    assert got == by_key(compile_node(NODE, networks=network_ids(listings["pods"]), **listings))
    return got


def test_two_pods_on_one_address_the_first_in_key_order_wins() -> None:
    nodes = [node_at("n2", "192.168.0.2"), node_at("n3", "192.168.0.3")]
    first, second = pod_on("a", "n3", "10.1.0.7"), pod_on("b", "n2", "10.1.0.7")
    compiler = NodeCompiler(NODE)
    for pods in ([second, first], [first, second]):
        (route,) = compiled(compiler, pods=pods, nodes=nodes).values()
        assert route.actions[0].params == (ip("192.168.0.3"),)  # "a"'s node, whatever the order
    (route,) = compiled(compiler, pods=[second], nodes=nodes).values()
    assert route.actions[0].params == (ip("192.168.0.2"),)  # "a" gone: "b" shows


def test_a_service_goes_with_the_last_address_on_its_network_and_comes_back_with_the_next() -> None:
    svc = {"metadata": meta("s", "prod", annotations={POD_NETWORK_ANNOTATION: "blue", SERVICE_VIP_ANNOTATION: "10.96.0.1"}),
           "spec": {"ports": [{"port": 80}]}}
    eps = {"metadata": meta("s-1", "prod", labels={"kubernetes.io/service-name": "s", ENDPOINTSLICE_NETWORK_LABEL: "blue"}),
           "endpoints": [{"addresses": ["10.1.0.9"]}], "ports": [{"port": 8080}]}
    compiler = NodeCompiler(NODE)
    listings: dict[str, list[Obj]] = {"services": [svc], "slices": [eps]}
    assert [e.table for e in compiled(compiler, pods=[pod_on("a", "n1", "10.1.0.9")], **listings).values()] == ["service"]
    assert compiled(compiler, pods=[], **listings) == {}  # blue has no address left: not routed
    (again,) = compiled(compiler, pods=[pod_on("b", "n1", "10.1.0.9", ("blue", 101))], **listings).values()
    assert again.get("network_id") == Exact(101)  # and under the id its pods name now
