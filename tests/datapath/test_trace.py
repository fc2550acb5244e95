"""The trace model on hand-written entries."""

from __future__ import annotations

from datapath.entries import ActionCall, Entry, Exact, Range, Ternary, entry, ip, prefix
from datapath.pipeline import DIRECTION_EGRESS, DIRECTION_INGRESS
from datapath.trace import Packet, trace

ROUTES = [entry("route", {"network_id": Exact(1), "dst": prefix(f"10.0.0.{i}/32")},
                ActionCall("to_port", (f"mndr{i}",))) for i in (1, 2, 3)]


def member(direction: int, address: str, group: int) -> Entry:
    return entry("policy_pod", {"network_id": Exact(1), "direction": Exact(direction), "pod_ip": Exact(ip(address))},
                 ActionCall("set_group", (group,)))


def allow(direction: int, group: int, peer: str, port: int) -> Entry:
    return entry("policy_rule", {"direction": Exact(direction), "group": Exact(group),
                                 "peer": Ternary(ip(peer), 0xFFFFFFFF), "proto": Ternary(6, 0xFF),
                                 "port": Range(port, port)}, ActionCall("allow"), priority=1)


def test_unisolated_pods_are_allowed_and_unknown_destinations_dropped() -> None:
    assert trace(Packet(1, ip("10.0.0.1"), ip("10.0.0.2"), 6, 80), ROUTES).verdict == "allow"
    assert trace(Packet(1, ip("10.0.0.1"), ip("10.0.0.9"), 6, 80), ROUTES).verdict == "deny"
    assert trace(Packet(2, ip("10.0.0.1"), ip("10.0.0.2"), 6, 80), ROUTES).verdict == "deny"  # other network


def test_ingress_and_egress_groups() -> None:
    entries = ROUTES + [member(DIRECTION_INGRESS, "10.0.0.2", 5), allow(DIRECTION_INGRESS, 5, "10.0.0.1", 80),
                        member(DIRECTION_EGRESS, "10.0.0.3", 6)]
    assert trace(Packet(1, ip("10.0.0.1"), ip("10.0.0.2"), 6, 80), entries).verdict == "allow"
    assert trace(Packet(1, ip("10.0.0.1"), ip("10.0.0.2"), 6, 81), entries).verdict == "deny"
    result = trace(Packet(1, ip("10.0.0.3"), ip("10.0.0.1"), 6, 80), entries)
    assert result.verdict == "deny" and any("egress denied" in s for s in result.steps)


def test_service_backends_are_each_traced() -> None:
    svc = entry("service", {"network_id": Exact(1), "vip": Exact(ip("10.96.0.1")), "proto": Exact(6),
                            "port": Exact(80)}, ActionCall("dnat", (ip("10.0.0.2"), 8080)),
                ActionCall("dnat", (ip("10.0.0.3"), 8080)))
    entries = ROUTES + [svc, member(DIRECTION_INGRESS, "10.0.0.3", 5)]
    result = trace(Packet(1, ip("10.0.0.1"), ip("10.96.0.1"), 6, 80), entries)
    assert result.verdict == "mixed"


def _tunnel(address: str, vtep: str) -> Entry:
    return entry("route", {"network_id": Exact(1), "dst": prefix(f"{address}/32")}, ActionCall("to_tunnel", (ip(vtep),)))


def _local(address: str, port: str) -> Entry:
    return entry("route", {"network_id": Exact(1), "dst": prefix(f"{address}/32")}, ActionCall("to_port", (port,)))


# Three nodes, one pod each (10.0.0.<n>, VTEP 10.254.0.<n>); every node
# tunnels to the other two.
NODES = {n: [_local(f"10.0.0.{n}", f"mndr{n}")] + [_tunnel(f"10.0.0.{m}", f"10.254.0.{m}") for m in (1, 2, 3) if m != n]
         for n in (1, 2, 3)}


def test_a_tunnel_is_followed_to_the_node_it_names() -> None:
    # Node 2 holds a tunnel route for 10.0.0.3 too: looking the destination up
    # in all other nodes at once found it and called the packet dropped.
    pkt = Packet(1, ip("10.0.0.1"), ip("10.0.0.3"), 6, 80)
    given = trace(pkt, NODES[1], [NODES[2], NODES[3]], [ip("10.254.0.2"), ip("10.254.0.3")])
    inferred = trace(pkt, NODES[1], [NODES[2], NODES[3]])
    for result in (given, inferred):
        assert result.verdict == "allow", result.steps
        assert any("remote route at 10.254.0.3: hit" in s for s in result.steps)
    # The node the tunnel names was not read: the trace says it cannot tell.
    assert trace(pkt, NODES[1], [NODES[2]]).verdict == "unknown"


def test_ipv6_packets_walk_the_ipv6_tables() -> None:
    routes6 = [entry("route6", {"network_id": Exact(1), "dst": prefix("fd00::2/128")}, ActionCall("to_port", ("mndr2",)))]
    assert trace(Packet(1, ip("fd00::1"), ip("fd00::2"), 6, 80, version=6), ROUTES + routes6).verdict == "allow"
    # The IPv4 tables do not answer for IPv6 packets (and the other way round).
    assert trace(Packet(1, ip("fd00::1"), ip("fd00::3"), 6, 80, version=6), ROUTES + routes6).verdict == "deny"
    isolated = routes6 + [entry("policy_pod6", {"network_id": Exact(1), "direction": Exact(DIRECTION_INGRESS),
                                                "pod_ip": Exact(ip("fd00::2"))}, ActionCall("set_group", (5,)))]
    assert trace(Packet(1, ip("fd00::1"), ip("fd00::2"), 6, 80, version=6), isolated).verdict == "deny"


def test_a_routed_port_sends_only_from_its_source_entries() -> None:
    port = entry("port", {"port": Exact("mndr1")}, ActionCall("set_port", (1,)))
    source = entry("source", {"port": Exact("mndr1"), "ip": Exact(ip("10.0.0.1"))},
                   ActionCall("allow_source", (0x020000000001,)))
    unguarded = trace(Packet(1, ip("10.0.0.1"), ip("10.0.0.2"), 6, 80), ROUTES + [port])
    assert unguarded.verdict == "deny" and any(s.startswith("source: miss") for s in unguarded.steps)
    guarded = trace(Packet(1, ip("10.0.0.1"), ip("10.0.0.2"), 6, 80), ROUTES + [port, source])
    assert guarded.verdict == "allow" and any(s.startswith("source: hit") for s in guarded.steps)
