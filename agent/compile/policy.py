"""NetworkPolicies on a secondary network -> policy_pod and policy_rule entries.

NetworkPolicy semantics (networking.k8s.io/v1): a pod selected by any policy
of a direction is isolated in it; traffic is allowed if any rule of any policy
selecting the pod allows it. Pods whose allowed traffic is identical share one
policy group, so the IPU holds each distinct rule set once, however many pods
and policies there are. ipBlock `except` is expanded to prefixes here; named
ports are resolved against the pod that owns them. Both families: a rule
without peers allows every address of both, an ipBlock only its own
family's; IPv6 rules go to policy_rule6 under the same group id.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from agent.compile.facts import PodFacts, pod_facts
from agent.compile.objects import Obj, labels, meta, network_of, selector_matches
from datapath.entries import ActionCall, Entry, Exact, Range, Ternary, entry, ip
from datapath.pipeline import DIRECTION_EGRESS, DIRECTION_INGRESS, PROTOCOLS, family_table
from podnetwork import faults

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ALL = (ipaddress.IPv4Network("0.0.0.0/0"), ipaddress.IPv6Network("::/0"))
RULE_PRIORITY = 1  # rules only allow, so their order does not matter


@dataclass(frozen=True)
class Rule:
    """One allowed (peer prefix, protocol, port range); None is "any"."""

    peer: IPNetwork
    proto: int | None
    ports: tuple[int, int] | None


@dataclass(frozen=True)
class PodView:
    namespace: str
    labels: Mapping[str, str]
    addresses: tuple[str, ...]  # on the network being compiled
    node: str
    named_ports: Mapping[tuple[str, str], int]


def pod_view(pod: PodFacts, network: str) -> PodView | None:
    """The pod as policy sees it on `network`; None when it holds no address there."""
    addresses = pod.addresses.get(network)
    if not addresses or not pod.running:
        return None
    return PodView(pod.namespace, pod.labels, tuple(addresses), pod.node, pod.named_ports)


def _ipblock(block: Mapping[str, Any]) -> list[IPNetwork]:
    net = ipaddress.ip_network(block["cidr"], strict=False)
    nets: list[IPNetwork] = [net]
    if faults.on("policy-ignores-ipblock-except"):
        return nets
    for text in block.get("except") or ():
        hole = ipaddress.ip_network(text, strict=False)
        if hole.version != net.version:
            continue
        nets = [piece for n in nets for piece in _without(n, hole)]
    return nets


def _without(net: IPNetwork, hole: IPNetwork) -> list[IPNetwork]:
    """`net` less `hole` (of the same family), as prefixes."""
    if not net.overlaps(hole):
        return [net]
    if net.subnet_of(hole):  # type: ignore[arg-type]  # same family, checked by the caller
        return []
    return list(net.address_exclude(hole))  # type: ignore[arg-type]


def _peer_pods(peer: Mapping[str, Any], policy_ns: str, pods: list[PodView],
               ns_labels: Mapping[str, Mapping[str, str]]) -> list[PodView]:
    if "namespaceSelector" in peer:
        allowed = {ns for ns, lbl in ns_labels.items() if selector_matches(peer["namespaceSelector"], lbl)}
        if faults.on("policy-ignores-namespace-selector"):
            allowed = set(ns_labels)
    else:
        allowed = {policy_ns}
    return [p for p in pods if p.namespace in allowed and selector_matches(peer.get("podSelector"), p.labels)]


def _port_ranges(ports: list[Mapping[str, Any]] | None, owner: PodView | None) -> list[tuple[int | None, tuple[int, int] | None]]:
    """(proto, port range) pairs of a rule; an empty list means every port and protocol."""
    if not ports:
        return [(None, None)]
    out: list[tuple[int | None, tuple[int, int] | None]] = []
    for p in ports:
        protocol = p.get("protocol", "TCP")
        proto = PROTOCOLS.get(protocol)
        if proto is None:
            continue
        port = p.get("port")
        if port is None:
            out.append((proto, None))
        elif isinstance(port, int) or str(port).isdigit():
            out.append((proto, (int(port), int(p.get("endPort") or port))))
        elif owner is not None and (port, protocol) in owner.named_ports:
            number = owner.named_ports[(port, protocol)]
            out.append((proto, (number, number)))
        # A named port the owning pod does not declare matches nothing.
    return out


def _named_to_pods(ports: list[Mapping[str, Any]] | None, nets: Iterable[IPNetwork],
                   pods: list[PodView]) -> set[Rule]:
    """Egress to a named port with no `to` pods (any peer, or an ipBlock): the name
    is resolved against each destination pod on the network, within `nets`, that
    declares it (NetworkPolicyPort: a named port of the destination pod)."""
    out: set[Rule] = set()
    for p in ports or ():
        port, protocol = p.get("port"), p.get("protocol", "TCP")
        proto = PROTOCOLS.get(protocol)
        if port is None or isinstance(port, int) or str(port).isdigit() or proto is None:
            continue
        for other in pods:
            number = other.named_ports.get((str(port), protocol))
            if number is None:
                continue
            for address in other.addresses:
                if any(ipaddress.ip_address(address) in net for net in nets):
                    out.add(Rule(ipaddress.ip_network(address), proto, (number, number)))
    return out


def _rules_of(rule: Mapping[str, Any], direction: int, policy_ns: str, pod: PodView, pods: list[PodView],
              ns_labels: Mapping[str, Mapping[str, str]]) -> set[Rule]:
    peers_key = "from" if direction == DIRECTION_INGRESS else "to"
    peers = rule.get(peers_key)
    out: set[Rule] = set()
    # Named ports belong to the pod receiving the traffic: the selected pod on
    # ingress, each peer pod on egress.
    if not peers:
        owner = pod if direction == DIRECTION_INGRESS else None
        out |= {Rule(every, proto, r) for every in ALL for proto, r in _port_ranges(rule.get("ports"), owner)}
        if direction == DIRECTION_EGRESS:
            out |= _named_to_pods(rule.get("ports"), ALL, pods)
        return out
    for peer in peers:
        if "ipBlock" in peer:
            owner = pod if direction == DIRECTION_INGRESS else None
            nets = _ipblock(peer["ipBlock"])
            for net in nets:
                out |= {Rule(net, proto, r) for proto, r in _port_ranges(rule.get("ports"), owner)}
            if direction == DIRECTION_EGRESS:
                out |= _named_to_pods(rule.get("ports"), nets, pods)
            continue
        for other in _peer_pods(peer, policy_ns, pods, ns_labels):
            owner = pod if direction == DIRECTION_INGRESS else other
            for address in other.addresses:
                net = ipaddress.ip_network(address)
                out |= {Rule(net, proto, r) for proto, r in _port_ranges(rule.get("ports"), owner)}
    return out


def _policy_types(policy: Obj) -> set[str]:
    spec = policy.get("spec") or {}
    if spec.get("policyTypes"):
        return set(spec["policyTypes"])
    # The API server's defaulting: Egress only when there are egress rules, so
    # `egress: []` without policyTypes leaves egress open.
    return {"Ingress", "Egress"} if spec.get("egress") else {"Ingress"}


def group_id(rules: frozenset[Rule], direction: int, salt: int = 0) -> int:
    """A stable id from the rule set's content, so recompiling changes nothing."""
    text = repr((direction, salt, sorted((str(r.peer), r.proto or -1, r.ports or (-1, -1)) for r in rules)))
    return 1 + int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % 0x7FFFFFFE


class Groups:
    """Group ids by content; a (very unlikely) hash collision gets a salted id.
    Counted, so the incremental compiler can give an id back when no pod holds it."""

    def __init__(self) -> None:
        self.by_id: dict[tuple[int, int], frozenset[Rule]] = {}
        self.holders: dict[tuple[int, int], int] = {}

    def id(self, rules: frozenset[Rule], direction: int) -> int:
        salt = 0
        while True:
            gid = group_id(rules, direction, salt)
            held = self.by_id.setdefault((direction, gid), rules)
            if held == rules:
                self.holders[(direction, gid)] = self.holders.get((direction, gid), 0) + 1
                return gid
            salt += 1

    def release(self, direction: int, gid: int) -> None:
        left = self.holders.pop((direction, gid), 0) - 1
        if left > 0:
            self.holders[(direction, gid)] = left
        else:
            self.by_id.pop((direction, gid), None)


def rule_entries(direction: int, group: int, rules: Iterable[Rule]) -> list[Entry]:
    out = []
    for r in rules:
        match: dict[str, Any] = {"direction": Exact(direction), "group": Exact(group)}
        if r.peer.prefixlen:
            match["peer"] = Ternary(int(r.peer.network_address), int(r.peer.netmask))
        table = family_table("policy_rule", r.peer.version)
        if r.proto is not None:
            match["proto"] = Ternary(r.proto, 0xFF)
        if r.ports is not None and r.ports != (0, 65535):
            match["port"] = Range(*r.ports)
        out.append(entry(table, match, ActionCall("allow"), priority=RULE_PRIORITY))
    return out


DIRECTIONS = ((DIRECTION_INGRESS, "Ingress", "ingress"), (DIRECTION_EGRESS, "Egress", "egress"))


def compile_policies(policies: Iterable[Obj], pods: Iterable[Obj], namespaces: Iterable[Obj],
                     networks: Mapping[str, int], node_name: str | None = None) -> list[Entry]:
    """Policy entries for the pods on `node_name` (all pods when None). Two pods
    claiming one address on a network: the first in key order wins."""
    ns_labels = {meta(n).get("name", ""): labels(n) for n in namespaces}
    facts = sorted((pod_facts(p) for p in pods), key=lambda f: f.key)
    by_network: dict[str, list[Obj]] = {}
    for pol in policies:
        net = network_of(pol)
        if net is not None and net in networks:
            by_network.setdefault(net, []).append(pol)
    out: dict[object, Entry] = {}
    groups = Groups()
    for network, pols in sorted(by_network.items()):
        views = [v for f in facts if (v := pod_view(f, network)) is not None]
        for pod in views:
            if node_name is not None and pod.node != node_name:
                continue
            for e in pod_policy(pod, pols, views, ns_labels, networks[network], groups)[0]:
                out.setdefault(e.key, e)
    return list(out.values())


def pod_policy(pod: PodView, policies: Iterable[Obj], views: list[PodView], ns_labels: Mapping[str, Mapping[str, str]],
               network_id: int, groups: Groups) -> tuple[list[Entry], list[tuple[int, int]]]:
    """One pod's policy entries on a network (its members and its groups' rules),
    and the (direction, group) ids it took from `groups`."""
    mine = [p for p in policies if meta(p).get("namespace") == pod.namespace]
    out: list[Entry] = []
    taken: list[tuple[int, int]] = []
    for direction, kind, key in DIRECTIONS:
        selecting = [p for p in mine if kind in _policy_types(p)
                     and selector_matches((p.get("spec") or {}).get("podSelector") or {}, pod.labels)]
        if not selecting:
            continue  # not isolated in this direction
        if direction == DIRECTION_EGRESS and faults.on("egress-policy-ignored"):
            continue
        rules: set[Rule] = set()
        for pol in selecting:
            for rule in (pol.get("spec") or {}).get(key) or ():
                rules |= _rules_of(rule, direction, meta(pol).get("namespace", ""), pod, views, ns_labels)
        frozen = frozenset(rules)
        gid = groups.id(frozen, direction)
        taken.append((direction, gid))
        # The entry's cookie names the policies selecting the pod, so the
        # target's /metrics can credit each with its group's verdicts.
        names = ",".join(sorted(f"{meta(p).get('namespace', '')}/{meta(p).get('name', '')}"
                                for p in selecting)).encode()
        for address in pod.addresses:
            table = family_table("policy_pod", ipaddress.ip_address(address).version)
            e = entry(table, {"network_id": Exact(network_id), "direction": Exact(direction),
                              "pod_ip": Exact(ip(address))}, ActionCall("set_group", (gid,)))
            out.append(replace(e, metadata=names))
        out += rule_entries(direction, gid, frozen)
    return out, taken


def reads_peers(policy: Obj) -> bool:
    """Whether the policy's rules depend on other pods or on namespaces: a pod or
    namespace peer, or an egress named port (resolved against each destination pod)."""
    spec = policy.get("spec") or {}
    for rule in spec.get("ingress") or ():
        if any("ipBlock" not in peer for peer in rule.get("from") or ()):
            return True
    for rule in spec.get("egress") or ():
        if any("ipBlock" not in peer for peer in rule.get("to") or ()):
            return True
        if any(not _numbered(p.get("port")) for p in rule.get("ports") or ()):
            return True
    return False


def _numbered(port: object) -> bool:
    return port is None or isinstance(port, int) or str(port).isdigit()
