"""MULTINETWORK-ATTACHMENT on two secondary networks across two nodes.

Network A holds a1, a2, a3; network B holds b1, b2; ab is on both. Pods
alternate between the nodes, so every table has cross-node cells.

- AttachmentInterfaces: each named interface exists in the pod, is up and
  holds exactly the addresses the status reports.
- AttachmentReachability (KEP requirement 13): every pod of A reaches every
  other over TCP and UDP, and the server sees the client's own address on A.
- NetworkIsolation (requirement 14, stories 1, 3, 4): no pod reaches another
  network's addresses; the same-network cells are the positive controls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from suite import status as status_mod
from suite.binding import Binding
from suite.connectivity import TableLog, Target, reach
from suite.options import RunOptions
from suite.pods import UDP_PORT, NetRequest
from suite.topology import Topology, topology
from suite.verdicts import Rules

pytestmark = pytest.mark.feature("AttachmentReachability")

IFACE = {"A": "neta", "B": "netb"}


@pytest.fixture(scope="module")
def two(api: client.ApiClient, new_api: Callable[[], client.ApiClient], binding: Binding,
        run_options: RunOptions, params_namespace: Callable[[], str], two_nodes: list[str]) -> Iterator[Topology]:
    with topology(api, new_api, binding, run_options, params_namespace, two_nodes) as t:
        nets = {"A": t.network("A", index=0), "B": t.network("B", index=1)}
        ns = t.namespace("kep-att")
        for i, label in enumerate(["a1", "a2", "a3"]):
            t.pod(label, ns, i, [NetRequest(nets["A"], interface=IFACE["A"])])
        for i, label in enumerate(["b1", "b2"]):
            t.pod(label, ns, i + 1, [NetRequest(nets["B"], interface=IFACE["B"])])
        t.pod("ab", ns, 1, [NetRequest(nets["A"], interface=IFACE["A"]), NetRequest(nets["B"], interface=IFACE["B"])])
        t.ready()
        yield t


@pytest.mark.feature("AttachmentInterfaces")
def test_named_interface_is_up_with_exactly_the_reported_addresses(two: Topology) -> None:
    problems = []
    for label, pod in two.pods.items():
        inside = two.probes.interfaces(pod)
        for attached in two.probes.attachments(pod):
            if attached.network == "default":
                continue
            iface = inside.get(attached.interface)
            if iface is None:
                problems.append(f"{label}: no interface {attached.interface} inside the pod ({sorted(inside)})")
                continue
            if not iface.up:
                problems.append(f"{label}: {attached.interface} is down")
            held = {i.ip for i in iface.addresses}
            if held != set(attached.addresses()):
                problems.append(f"{label}: {attached.interface} holds {sorted(map(str, held))}, the status reports "
                                f"{sorted(map(str, attached.addresses()))}")
            if attached.prefixed and set(iface.addresses) != set(attached.ips):
                problems.append(f"{label}: prefix lengths differ: {iface.addresses} vs {attached.ips}")
        wanted = {IFACE[k] for k, net in two.nets.items() if any(n.network == net for n in pod.networks)}
        reported = {a.interface for a in two.probes.attachments(pod)}
        if not wanted <= reported:
            problems.append(f"{label}: asked for interfaces {sorted(wanted)}, the status reports {sorted(reported)}")
    assert not problems, "\n".join(problems)


def test_every_pod_of_a_network_reaches_every_other_seen_by_its_own_address(
    two: Topology, rules: Rules, tables: TableLog,
) -> None:
    net = two.nets["A"]
    members = two.on(net)
    clients = {m: two.pods[m] for m in members}
    targets = {m: Target(two.addr(m, net)) for m in members}
    expect = {(c, t): True for c in members for t in members}
    seen_as = {m: two.addr(m, net) for m in members}
    table = reach(two.probes, f"TCP on network A ({net}): reaches, seen by its own address",
                  clients, targets, expect, rules, seen_as=seen_as)
    tables.check("test_every_pod_of_a_network_reaches_every_other_seen_by_its_own_address", table)


def test_udp_reaches_every_pod_of_the_network(two: Topology, rules: Rules, tables: TableLog) -> None:
    net = two.nets["A"]
    members = two.on(net)
    targets = {m: Target(two.addr(m, net), UDP_PORT, "udp", answer=two.pods[m].hostname) for m in members}
    table = reach(two.probes, f"UDP on network A ({net})", {m: two.pods[m] for m in members}, targets,
                  {(c, t): True for c in members for t in members}, rules)
    tables.check("test_udp_reaches_every_pod_of_the_network", table)


@pytest.mark.feature("NetworkIsolation")
def test_pods_reach_only_their_own_networks(two: Topology, rules: Rules, tables: TableLog) -> None:
    targets, expect = {}, {}
    for key, net in two.nets.items():
        for member in two.on(net):
            column = f"{member}@{key}"
            targets[column] = Target(two.addr(member, net), answer=two.pods[member].hostname)
            for client_label, pod in two.pods.items():
                if client_label != member:
                    expect[(client_label, column)] = any(n.network == net for n in pod.networks)
    table = reach(two.probes, "isolation between networks A and B (positive controls: same-network cells)",
                  dict(two.pods), targets, expect, rules)
    tables.check("test_pods_reach_only_their_own_networks", table)


@pytest.mark.feature("AttachmentInterfaces")
def test_status_lists_each_asked_network_once(two: Topology) -> None:
    for label, pod in two.pods.items():
        attached = two.probes.attachments(pod)
        for request in pod.networks:
            assert request.network is not None
            status_mod.on(attached, request.network)  # exactly one entry, or StatusError names them
