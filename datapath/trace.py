"""The pipeline model: what the tables do to a described packet.

Evaluates entries read from targets in the order the IPU applies them: the
source's port, service DNAT, egress policy at the source, route (and, through
a tunnel, the route at the remote node), ingress policy at the destination's
node, the neighbour entry of the port it leaves by. Each table of the
pipeline description has one step here, registered by table name; lookups
match by the table's own fields (kinds and widths from the description).
`multinet trace` prints each step and the verdict; tests check the verdict
against the kernel for the same packets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from datapath.entries import Entry, Exact, Lpm, Range, Ternary, describe, ip_text
from datapath.pipeline import DIRECTION_EGRESS, DIRECTION_INGRESS, PIPELINE, Pipeline, Table

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


@dataclass
class Walk:
    """One packet on its way: where it is and what the tables decided so far."""

    pkt: Packet
    at: Sequence[Entry]  # the entries of the node whose tables apply now
    remote: Sequence[Entry]  # the other nodes' entries (reached through a tunnel)
    steps: list[str]
    direction: int = DIRECTION_EGRESS  # of the policy stage being applied
    group: int | None = None  # the policy group of the pod isolated in `direction`
    out_port: str | None = None  # the local port the route sends it to
    backends: list[Packet] = field(default_factory=list)  # after a service hit: one packet per member
    verdict: str | None = None  # set when a step decides (a drop)


Step = Callable[[Walk], None]
STEPS: dict[str, Step] = {}


def step(table: str) -> Callable[[Step], Step]:
    def register(fn: Step) -> Step:
        STEPS[table] = fn
        return fn
    return register


def missing_steps(p: Pipeline = PIPELINE) -> list[str]:
    """Tables of the pipeline the trace model cannot explain."""
    return [t.name for t in p.tables if t.name not in STEPS]


# --- lookups, by the description --------------------------------------------------


def _matches(t: Table, e: Entry, fields: dict[str, int | str]) -> bool:
    for name, m in e.match:
        value = fields.get(name)
        if value is None:
            return False
        width = t.field(name).bitwidth
        if isinstance(m, Exact) and m.value != value:
            return False
        if isinstance(m, Lpm) and isinstance(value, int) and \
                (value >> (width - m.prefix_len)) != (m.value >> (width - m.prefix_len)):
            return False
        if isinstance(m, Ternary) and isinstance(value, int) and value & m.mask != m.value:
            return False
        if isinstance(m, Range) and isinstance(value, int) and not m.low <= value <= m.high:
            return False
    return True


def _lookup(entries: Sequence[Entry], table: str, fields: dict[str, int | str]) -> Entry | None:
    t = PIPELINE.table(table)
    hits = [e for e in entries if e.table == table and _matches(t, e, fields)]
    if not hits:
        return None

    def rank(e: Entry) -> tuple[int, int]:
        plen = sum(m.prefix_len for _, m in e.match if isinstance(m, Lpm))
        return (plen, e.priority)
    return max(hits, key=rank)  # longest prefix, then highest priority


# --- one step per table ----------------------------------------------------------------


@step("port")
def _port(w: Walk) -> None:
    # Packets are described by network; the source's port shows where they enter.
    src = _lookup(w.at, "route", {"network_id": w.pkt.network, "dst": w.pkt.src})
    port = str(src.actions[0].params[0]) if src is not None and src.actions[0].name == "to_port" else None
    entry = _lookup(w.at, "port", {"port": port}) if port else None
    if entry is None:
        w.steps.append(f"port: {ip_text(w.pkt.src)} is behind no port of this node; network {w.pkt.network} as given")
    else:
        w.steps.append(f"port: hit {describe(entry)}")


@step("service")
def _service(w: Walk) -> None:
    pkt = w.pkt
    svc = _lookup(w.at, "service", {"network_id": pkt.network, "vip": pkt.dst, "proto": pkt.proto, "port": pkt.dport})
    if svc is None:
        w.steps.append("service: miss")
        w.backends = []
        return
    w.steps.append(f"service: hit {describe(svc)}")
    w.backends = [Packet(pkt.network, pkt.src, int(call.params[0]), pkt.proto, int(call.params[1]))
                  for call in svc.actions]


def _side(w: Walk) -> str:
    return "egress" if w.direction == DIRECTION_EGRESS else "ingress"


@step("policy_pod")
def _policy_pod(w: Walk) -> None:
    pod = w.pkt.src if w.direction == DIRECTION_EGRESS else w.pkt.dst
    member = _lookup(w.at, "policy_pod", {"network_id": w.pkt.network, "direction": w.direction, "pod_ip": pod})
    if member is None:
        w.steps.append(f"policy_pod: miss -> {ip_text(pod)} not isolated for {_side(w)}")
        w.group = None
        return
    w.steps.append(f"policy_pod: hit {describe(member)}")
    w.group = int(member.actions[0].params[0])


@step("policy_rule")
def _policy_rule(w: Walk) -> None:
    if w.group is None:
        return  # not isolated: no rule is consulted
    peer = w.pkt.dst if w.direction == DIRECTION_EGRESS else w.pkt.src
    rule = _lookup(w.at, "policy_rule", {"direction": w.direction, "group": w.group, "peer": peer,
                                         "proto": w.pkt.proto, "port": w.pkt.dport})
    if rule is None:
        w.steps.append(f"policy_rule: miss in group {w.group} -> {_side(w)} denied")
        w.verdict = DENY
        return
    w.steps.append(f"policy_rule: hit {describe(rule)} -> {_side(w)} allowed")


@step("route")
def _route(w: Walk) -> None:
    route = _lookup(w.at, "route", {"network_id": w.pkt.network, "dst": w.pkt.dst})
    if route is None or route.actions[0].name == "drop":
        w.steps.append(f"route: {'miss' if route is None else describe(route)} -> dropped")
        w.verdict = DENY
        return
    w.steps.append(f"route: hit {describe(route)}")
    if route.actions[0].name == "to_tunnel":
        w.at = w.remote
        route = _lookup(w.at, "route", {"network_id": w.pkt.network, "dst": w.pkt.dst})
        if route is None or route.actions[0].name != "to_port":
            w.steps.append("remote route: no local port for the destination -> dropped")
            w.verdict = DENY
            return
        w.steps.append(f"remote route: hit {describe(route)}")
    w.out_port = str(route.actions[0].params[0])


@step("neighbor")
def _neighbor(w: Walk) -> None:
    assert w.out_port is not None
    found = _lookup(w.at, "neighbor", {"port": w.out_port, "ip": w.pkt.dst})
    if found is None:
        w.steps.append(f"neighbor: miss -> the IPU resolves {ip_text(w.pkt.dst)} on {w.out_port} by ARP")
    else:
        w.steps.append(f"neighbor: hit {describe(found)}")


# --- the order the IPU applies them -------------------------------------------------------

# After service DNAT, each (backend) packet goes through these, at the source's
# node until the route hands it to the destination's node.
_DELIVERY: tuple[tuple[str, int | None], ...] = (
    ("policy_pod", DIRECTION_EGRESS), ("policy_rule", DIRECTION_EGRESS), ("route", None),
    ("policy_pod", DIRECTION_INGRESS), ("policy_rule", DIRECTION_INGRESS), ("neighbor", None),
)


def _deliver(pkt: Packet, local: Sequence[Entry], remote: Sequence[Entry], steps: list[str]) -> str:
    w = Walk(pkt, local, remote, steps)
    for table, direction in _DELIVERY:
        if direction is not None:
            w.direction = direction
        STEPS[table](w)
        if w.verdict is not None:
            return w.verdict
    return ALLOW


def trace(pkt: Packet, local: Sequence[Entry], remotes: Sequence[Sequence[Entry]] = ()) -> TraceResult:
    """`local`: entries of the packet's node; `remotes`: entries of the other nodes."""
    remote = [e for r in remotes for e in r]
    steps = [f"packet: network {pkt.network} {ip_text(pkt.src)} -> {ip_text(pkt.dst)} proto {pkt.proto} port {pkt.dport}"]
    entry = Walk(pkt, local, remote, steps)
    STEPS["port"](entry)
    STEPS["service"](entry)
    if not entry.backends:
        return TraceResult(_deliver(pkt, local, remote, steps), tuple(steps))
    verdicts = set()
    for backend in entry.backends:
        steps.append(f"-- backend {ip_text(backend.dst)}:{backend.dport} (dnat, conntrack keeps the choice)")
        verdicts.add(_deliver(backend, local, remote, steps))
    verdict = verdicts.pop() if len(verdicts) == 1 else "mixed"
    return TraceResult(verdict, tuple(steps))
