"""The pipeline model: what the tables do to a described packet.

Evaluates entries read from targets in the order the IPU applies them: the
source's port and its source guard, service DNAT, egress policy at the source, route (and, through
a tunnel, the route at the node whose VTEP the tunnel names), ingress policy
at the destination's node, the neighbour entry of the port it leaves by.
Each node's entries stay its own: a tunnel is followed to the one node it
points to (its VTEP given, or inferred from the other nodes' tunnel routes
toward that node's pods), never looked up in all other nodes at once. Each table of the
pipeline description has one step here, registered by table name; lookups
match by the table's own fields (kinds and widths from the description).
`multinet trace` prints each step and the verdict; tests check the verdict
against the kernel for the same packets. An IPv6 packet (`version=6`) walks
the IPv6 tables (`route6`, ...) through the same steps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from datapath.entries import Entry, Exact, Lpm, Range, Ternary, describe, ip_text
from datapath.pipeline import (ADDRESS_WIDTH, DIRECTION_EGRESS, DIRECTION_INGRESS, PIPELINE, Pipeline, Table,
                               family_table)

ALLOW, DENY, UNKNOWN = "allow", "deny", "unknown"


@dataclass(frozen=True)
class Packet:
    network: int
    src: int
    dst: int
    proto: int
    dport: int
    version: int = 4

    def text(self, address: int) -> str:
        return ip_text(address, ADDRESS_WIDTH[self.version])


@dataclass(frozen=True)
class TraceResult:
    verdict: str  # allow | deny | mixed (differs per service backend) | unknown (a node was not read)
    steps: tuple[str, ...]


@dataclass
class Walk:
    """One packet on its way: where it is and what the tables decided so far."""

    pkt: Packet
    at: Sequence[Entry]  # the entries of the node whose tables apply now
    nodes: Mapping[int, Sequence[Entry]]  # the other nodes' entries by VTEP (reached through a tunnel)
    steps: list[str]
    direction: int = DIRECTION_EGRESS  # of the policy stage being applied
    group: int | None = None  # the policy group of the pod isolated in `direction`
    out_port: str | None = None  # the local port the route sends it to
    backends: list[Packet] = field(default_factory=list)  # after a service hit: one packet per member
    verdict: str | None = None  # set when a step decides (a drop)

    def lookup(self, kind: str, fields: dict[str, int | str]) -> Entry | None:
        """The hit in the table of `kind` for the packet's family (`route` or `route6`...)."""
        return _lookup(self.at, family_table(kind, self.pkt.version) if kind != "port" else kind, fields)


Step = Callable[[Walk], None]
STEPS: dict[str, Step] = {}


def step(*tables: str) -> Callable[[Step], Step]:
    """Register a step for a table kind and its other family's table."""
    def register(fn: Step) -> Step:
        for table in tables:
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
    src = w.lookup("route", {"network_id": w.pkt.network, "dst": w.pkt.src})
    port = str(src.actions[0].params[0]) if src is not None and src.actions[0].name == "to_port" else None
    entry = w.lookup("port", {"port": port}) if port else None
    if entry is None:
        w.steps.append(f"port: {w.pkt.text(w.pkt.src)} is behind no port of this node; network {w.pkt.network} as given")
    else:
        w.steps.append(f"port: hit {describe(entry)}")


@step("source", "source6")
def _source(w: Walk) -> None:
    """The source guard at the port the source is behind (packets are
    described without MACs: the pod's own is assumed)."""
    src = w.lookup("route", {"network_id": w.pkt.network, "dst": w.pkt.src})
    if src is None or src.actions[0].name != "to_port":
        return  # from another node or outside: guarded where it entered
    port = str(src.actions[0].params[0])
    joined = w.lookup("port", {"port": port})
    if joined is None or joined.actions[0].name != "set_port":
        return  # only a port routed into its network is guarded
    found = w.lookup("source", {"port": port, "ip": w.pkt.src})
    if found is None:
        w.steps.append(f"source: miss -> {w.pkt.text(w.pkt.src)} is not an address {port} may send from -> dropped")
        w.verdict = DENY
    else:
        w.steps.append(f"source: hit {describe(found)}")


@step("service", "service6")
def _service(w: Walk) -> None:
    pkt = w.pkt
    svc = w.lookup("service", {"network_id": pkt.network, "vip": pkt.dst, "proto": pkt.proto, "port": pkt.dport})
    if svc is None:
        w.steps.append("service: miss")
        w.backends = []
        return
    w.steps.append(f"service: hit {describe(svc)}")
    w.backends = [Packet(pkt.network, pkt.src, int(call.params[0]), pkt.proto, int(call.params[1]), pkt.version)
                  for call in svc.actions]


def _side(w: Walk) -> str:
    return "egress" if w.direction == DIRECTION_EGRESS else "ingress"


@step("policy_pod", "policy_pod6")
def _policy_pod(w: Walk) -> None:
    pod = w.pkt.src if w.direction == DIRECTION_EGRESS else w.pkt.dst
    member = w.lookup("policy_pod", {"network_id": w.pkt.network, "direction": w.direction, "pod_ip": pod})
    if member is None:
        w.steps.append(f"policy_pod: miss -> {w.pkt.text(pod)} not isolated for {_side(w)}")
        w.group = None
        return
    w.steps.append(f"policy_pod: hit {describe(member)}")
    w.group = int(member.actions[0].params[0])


@step("policy_rule", "policy_rule6")
def _policy_rule(w: Walk) -> None:
    if w.group is None:
        return  # not isolated: no rule is consulted
    peer = w.pkt.dst if w.direction == DIRECTION_EGRESS else w.pkt.src
    rule = w.lookup("policy_rule", {"direction": w.direction, "group": w.group, "peer": peer,
                                         "proto": w.pkt.proto, "port": w.pkt.dport})
    if rule is None:
        w.steps.append(f"policy_rule: miss in group {w.group} -> {_side(w)} denied")
        w.verdict = DENY
        return
    w.steps.append(f"policy_rule: hit {describe(rule)} -> {_side(w)} allowed")


@step("route", "route6")
def _route(w: Walk) -> None:
    route = w.lookup("route", {"network_id": w.pkt.network, "dst": w.pkt.dst})
    if route is None or route.actions[0].name == "drop":
        w.steps.append(f"route: {'miss' if route is None else describe(route)} -> dropped")
        w.verdict = DENY
        return
    w.steps.append(f"route: hit {describe(route)}")
    if route.actions[0].name == "to_tunnel":
        vtep = int(route.actions[0].params[0])
        node = w.nodes.get(vtep)
        if node is None:
            w.steps.append(f"tunnel: no entries were read from the node of VTEP {ip_text(vtep)} -> unknown")
            w.verdict = UNKNOWN
            return
        w.at = node
        route = w.lookup("route", {"network_id": w.pkt.network, "dst": w.pkt.dst})
        if route is None or route.actions[0].name != "to_port":
            w.steps.append(f"remote route at {ip_text(vtep)}: no local port for the destination -> dropped")
            w.verdict = DENY
            return
        w.steps.append(f"remote route at {ip_text(vtep)}: hit {describe(route)}")
    w.out_port = str(route.actions[0].params[0])


@step("neighbor", "neighbor6")
def _neighbor(w: Walk) -> None:
    assert w.out_port is not None
    found = w.lookup("neighbor", {"port": w.out_port, "ip": w.pkt.dst})
    if found is None:
        how = "ARP" if w.pkt.version == 4 else "neighbour discovery"
        w.steps.append(f"neighbor: miss -> the IPU resolves {w.pkt.text(w.pkt.dst)} on {w.out_port} by {how}")
    else:
        w.steps.append(f"neighbor: hit {describe(found)}")


@step("flood")
def _flood(w: Walk) -> None:
    """Layer 2 segments (address-less networks) are bridged: the trace follows
    addressed packets, which never meet this table."""


# --- the order the IPU applies them -------------------------------------------------------

# After service DNAT, each (backend) packet goes through these, at the source's
# node until the route hands it to the destination's node.
_DELIVERY: tuple[tuple[str, int | None], ...] = (
    ("policy_pod", DIRECTION_EGRESS), ("policy_rule", DIRECTION_EGRESS), ("route", None),
    ("policy_pod", DIRECTION_INGRESS), ("policy_rule", DIRECTION_INGRESS), ("neighbor", None),
)


def _deliver(pkt: Packet, local: Sequence[Entry], nodes: Mapping[int, Sequence[Entry]], steps: list[str]) -> str:
    w = Walk(pkt, local, nodes, steps)
    for table, direction in _DELIVERY:
        if direction is not None:
            w.direction = direction
        STEPS[table](w)
        if w.verdict is not None:
            return w.verdict
    return ALLOW


def node_vteps(local: Sequence[Entry], remotes: Sequence[Sequence[Entry]]) -> list[int | None]:
    """Each remote node's VTEP, as the other nodes' tunnel routes toward its
    pods (its host routes to a port) name it; None when nobody tunnels to it."""
    nodes = [local, *remotes]
    tunnels: dict[tuple[str, object], set[int]] = {}  # (table, key) -> VTEPs tunnelled to
    for entries in nodes:
        for e in entries:
            if e.table in ("route", "route6") and e.actions and e.actions[0].name == "to_tunnel":
                tunnels.setdefault((e.table, e.match), set()).add(int(e.actions[0].params[0]))
    out: list[int | None] = []
    for entries in remotes:
        votes: Counter[int] = Counter()
        for e in entries:
            if e.table in ("route", "route6") and e.actions and e.actions[0].name == "to_port":
                votes.update(tunnels.get((e.table, e.match), ()))
        out.append(votes.most_common(1)[0][0] if votes else None)
    return out


def trace(pkt: Packet, local: Sequence[Entry], remotes: Sequence[Sequence[Entry]] = (),
          vteps: Sequence[int | None] | None = None) -> TraceResult:
    """`local`: entries of the packet's node; `remotes`: entries of the other
    nodes, `vteps` their underlay addresses (inferred where None)."""
    inferred = node_vteps(local, remotes)
    given = list(vteps) if vteps is not None else [None] * len(remotes)
    nodes = {v: r for v, r in zip((g if g is not None else i for g, i in zip(given, inferred)), remotes)
             if v is not None}
    steps = [f"packet: network {pkt.network} {pkt.text(pkt.src)} -> {pkt.text(pkt.dst)} proto {pkt.proto} "
             f"port {pkt.dport}"]
    entry = Walk(pkt, local, nodes, steps)
    STEPS["port"](entry)
    STEPS["source"](entry)
    if entry.verdict is not None:
        return TraceResult(entry.verdict, tuple(steps))
    STEPS["service"](entry)
    if not entry.backends:
        return TraceResult(_deliver(pkt, local, nodes, steps), tuple(steps))
    verdicts = set()
    for backend in entry.backends:
        steps.append(f"-- backend {pkt.text(backend.dst)}:{backend.dport} (dnat, conntrack keeps the choice)")
        verdicts.add(_deliver(backend, local, nodes, steps))
    verdict = verdicts.pop() if len(verdicts) == 1 else "mixed"
    return TraceResult(verdict, tuple(steps))
