"""The pipeline model: what the tables do to a described packet.

Evaluates entries read from targets in the order the IPU applies them:
service DNAT, egress policy at the source, route, ingress policy at the
destination's node. `multinet trace` prints each table hit and the verdict;
tests check the verdict against the kernel for the same packets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from datapath.entries import Entry, Exact, Lpm, Range, Ternary, describe, ip_text
from datapath.pipeline import DIRECTION_EGRESS, DIRECTION_INGRESS

ALLOW, DENY = "allow", "deny"


@dataclass(frozen=True)
class Packet:
    network: int
    src: int
    dst: int
    proto: int
    dport: int


@dataclass(frozen=True)
class TraceResult:
    verdict: str  # allow | deny | mixed (differs per service backend)
    steps: tuple[str, ...]


def _matches(e: Entry, fields: dict[str, int | str]) -> bool:
    for name, m in e.match:
        value = fields.get(name)
        if value is None:
            return False
        if isinstance(m, Exact) and m.value != value:
            return False
        if isinstance(m, Lpm) and isinstance(value, int) and (value >> (32 - m.prefix_len)) != (m.value >> (32 - m.prefix_len)):
            return False
        if isinstance(m, Ternary) and isinstance(value, int) and value & m.mask != m.value:
            return False
        if isinstance(m, Range) and isinstance(value, int) and not m.low <= value <= m.high:
            return False
    return True


def _lookup(entries: Sequence[Entry], table: str, fields: dict[str, int | str]) -> Entry | None:
    hits = [e for e in entries if e.table == table and _matches(e, fields)]
    if not hits:
        return None
    def rank(e: Entry) -> tuple[int, int]:
        dst = e.get("dst")
        return (dst.prefix_len if isinstance(dst, Lpm) else 0, e.priority)
    return max(hits, key=rank)  # longest prefix, then highest priority


def _policy(entries: Sequence[Entry], direction: int, pkt: Packet, steps: list[str]) -> bool:
    pod, peer = (pkt.src, pkt.dst) if direction == DIRECTION_EGRESS else (pkt.dst, pkt.src)
    side = "egress" if direction == DIRECTION_EGRESS else "ingress"
    member = _lookup(entries, "policy_pod", {"network_id": pkt.network, "direction": direction, "pod_ip": pod})
    if member is None:
        steps.append(f"policy_pod: miss -> {ip_text(pod)} not isolated for {side}")
        return True
    steps.append(f"policy_pod: hit {describe(member)}")
    group = int(member.actions[0].params[0])
    rule = _lookup(entries, "policy_rule", {"direction": direction, "group": group, "peer": peer,
                                             "proto": pkt.proto, "port": pkt.dport})
    if rule is None:
        steps.append(f"policy_rule: miss in group {group} -> {side} denied")
        return False
    steps.append(f"policy_rule: hit {describe(rule)} -> {side} allowed")
    return True


def _deliver(pkt: Packet, local: Sequence[Entry], remote: Sequence[Entry], steps: list[str]) -> str:
    if not _policy(local, DIRECTION_EGRESS, pkt, steps):
        return DENY
    route = _lookup(local, "route", {"network_id": pkt.network, "dst": pkt.dst})
    if route is None or route.actions[0].name == "drop":
        steps.append(f"route: {'miss' if route is None else describe(route)} -> dropped")
        return DENY
    steps.append(f"route: hit {describe(route)}")
    node = local
    if route.actions[0].name == "to_tunnel":
        node = remote
        far = _lookup(node, "route", {"network_id": pkt.network, "dst": pkt.dst})
        if far is None or far.actions[0].name != "to_port":
            steps.append("remote route: no local port for the destination -> dropped")
            return DENY
        steps.append(f"remote route: hit {describe(far)}")
    return ALLOW if _policy(node, DIRECTION_INGRESS, pkt, steps) else DENY


def trace(pkt: Packet, local: Sequence[Entry], remotes: Sequence[Sequence[Entry]] = ()) -> TraceResult:
    """`local`: entries of the packet's node; `remotes`: entries of the other nodes."""
    remote = [e for r in remotes for e in r]
    steps = [f"packet: network {pkt.network} {ip_text(pkt.src)} -> {ip_text(pkt.dst)} proto {pkt.proto} port {pkt.dport}"]
    svc = _lookup(local, "service", {"network_id": pkt.network, "vip": pkt.dst, "proto": pkt.proto, "port": pkt.dport})
    if svc is None:
        steps.append("service: miss")
        verdict = _deliver(pkt, local, remote, steps)
        return TraceResult(verdict, tuple(steps))
    steps.append(f"service: hit {describe(svc)}")
    verdicts = set()
    for call in svc.actions:
        backend = Packet(pkt.network, pkt.src, int(call.params[0]), pkt.proto, int(call.params[1]))
        steps.append(f"-- backend {ip_text(backend.dst)}:{backend.dport} (dnat, conntrack keeps the choice)")
        verdicts.add(_deliver(backend, local, remote, steps))
    verdict = verdicts.pop() if len(verdicts) == 1 else "mixed"
    return TraceResult(verdict, tuple(steps))
