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
