"""The pipeline contract: one declarative description of the offload tables.

P4Info, the IPU target's validation and realization, the client's encoding and
the trace model all derive from `PIPELINE` (or `pipeline(sizes)`). Every
forwarding, service and policy key carries the network id, so two networks may
use the same addresses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from finsy.proto import p4i
from google.protobuf import text_format

MatchKind = Literal["exact", "lpm", "ternary", "range"]

# P4Runtime object ids carry their kind in the top byte (p4info.proto P4Ids).
_ACTION_PREFIX = p4i.P4Ids.ACTION << 24
_TABLE_PREFIX = p4i.P4Ids.TABLE << 24
_PROFILE_PREFIX = p4i.P4Ids.ACTION_PROFILE << 24
_COUNTER_PREFIX = p4i.P4Ids.DIRECT_COUNTER << 24

# Ports are named by their representor link; P4Runtime's translated types let
# the controller send the name as an SDN string (spec section "Translation of
# port numbers").
PORT_TYPE = "PortId_t"
PORT_TYPE_URI = "multinet.io/ipu/v1/PortId_t"

DIRECTION_INGRESS = 0
DIRECTION_EGRESS = 1
PROTOCOLS = {"TCP": 6, "UDP": 17, "SCTP": 132}
NO_ACTION = "NoAction"


@dataclass(frozen=True)
class Field:
    name: str
    id: int
    bitwidth: int
    match: MatchKind
    string: bool = False  # a translated port name, sent as an SDN string


@dataclass(frozen=True)
class Param:
    name: str
    id: int
    bitwidth: int
    string: bool = False


@dataclass(frozen=True)
class Action:
    name: str
    id: int
    params: tuple[Param, ...] = ()


@dataclass(frozen=True)
class Table:
    name: str
    id: int
    fields: tuple[Field, ...]
    actions: tuple[str, ...]
    size: int
    selector: bool = False  # action selector, programmed one-shot (spec 9.2.3)
    max_group_size: int = 0
    counters: bool = False

    @property
    def needs_priority(self) -> bool:
        return any(f.match in ("ternary", "range") for f in self.fields)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"table {self.name} has no field {name!r}")


@dataclass(frozen=True)
class Pipeline:
    name: str
    tables: tuple[Table, ...]
    actions: tuple[Action, ...]

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(f"no table {name!r}")

    def table_by_id(self, table_id: int) -> Table | None:
        return next((t for t in self.tables if t.id == table_id), None)

    def action(self, name: str) -> Action:
        for a in self.actions:
            if a.name == name:
                return a
        raise KeyError(f"no action {name!r}")

    def action_by_id(self, action_id: int) -> Action | None:
        return next((a for a in self.actions if a.id == action_id), None)


_NET = 24  # network ids are VNIs
_ACTIONS = (
    Action("set_port", _ACTION_PREFIX | 1, (Param("network_id", 1, _NET),)),
    Action("to_port", _ACTION_PREFIX | 2, (Param("port", 1, 32, string=True),)),
    Action("to_tunnel", _ACTION_PREFIX | 3, (Param("vtep", 1, 32),)),
    Action("drop", _ACTION_PREFIX | 4),
    Action("set_dmac", _ACTION_PREFIX | 5, (Param("mac", 1, 48),)),
    Action("dnat", _ACTION_PREFIX | 6, (Param("ip", 1, 32), Param("port", 2, 16))),
    Action("set_group", _ACTION_PREFIX | 7, (Param("group", 1, 32),)),
    Action("allow", _ACTION_PREFIX | 8),
    # Every table's miss behaviour, declared as its const default action: a
    # miss does nothing here and later stages decide (no route: dropped; no
    # policy_pod entry: not isolated; no allowing rule: denied).
    Action(NO_ACTION, _ACTION_PREFIX | 9),
)

DEFAULT_SIZES: Mapping[str, int] = {
    "port": 4096,
    "route": 65536,
    "neighbor": 65536,
    "service": 16384,
    "policy_pod": 16384,
    "policy_rule": 262144,
}


def pipeline(sizes: Mapping[str, int] | None = None, max_group_size: int = 256) -> Pipeline:
    """The pipeline with table sizes as parameters, as on a real IPU."""
    s = {**DEFAULT_SIZES, **(sizes or {})}
    unknown = set(s) - set(DEFAULT_SIZES)
    if unknown:
        raise ValueError(f"sizes: unknown tables {sorted(unknown)}")
    t = _TABLE_PREFIX
    tables = (
        # Port -> network: which network a representor's packets belong to.
        Table("port", t | 1, (Field("port", 1, 32, "exact", string=True),), ("set_port",), s["port"]),
        # L3 forwarding per network: to a local port, through the network's
        # VXLAN tunnel to a remote node, or dropped.
        Table(
            "route",
            t | 2,
            (Field("network_id", 1, _NET, "exact"), Field("dst", 2, 32, "lpm")),
            ("to_port", "to_tunnel", "drop"),
            s["route"],
        ),
        # Neighbour entries: the MAC of an address behind a local port.
        Table(
            "neighbor",
            t | 3,
            (Field("port", 1, 32, "exact", string=True), Field("ip", 2, 32, "exact")),
            ("set_dmac",),
            s["neighbor"],
        ),
        # Service load balancing: (network, VIP, protocol, port) -> a selector
        # group of backends; connection tracking keeps established flows on
        # their backend when the group changes.
        Table(
            "service",
            t | 4,
            (
                Field("network_id", 1, _NET, "exact"),
                Field("vip", 2, 32, "exact"),
                Field("proto", 3, 8, "exact"),
                Field("port", 4, 16, "exact"),
            ),
            ("dnat",),
            s["service"],
            selector=True,
            max_group_size=max_group_size,
            counters=True,
        ),
        # Policy: pod -> policy group per direction. A pod with an entry is
        # isolated in that direction (NetworkPolicy semantics).
        Table(
            "policy_pod",
            t | 5,
            (
                Field("network_id", 1, _NET, "exact"),
                Field("direction", 2, 1, "exact"),
                Field("pod_ip", 3, 32, "exact"),
            ),
            ("set_group",),
            s["policy_pod"],
            counters=True,
        ),
        # Policy rules of a group: peer prefix (ipBlock/except expanded to
        # prefixes), protocol, port range (port..endPort). Any match allows.
        Table(
            "policy_rule",
            t | 6,
            (
                Field("direction", 1, 1, "exact"),
                Field("group", 2, 32, "exact"),
                Field("peer", 3, 32, "ternary"),
                Field("proto", 4, 8, "ternary"),
                Field("port", 5, 16, "range"),
            ),
            ("allow",),
            s["policy_rule"],
        ),
    )
    return Pipeline("multinet_ipu", tables, _ACTIONS)


PIPELINE = pipeline()
# The P4Info of PIPELINE, checked in for controllers that push the pipeline
# themselves; regenerate with `multinet ipu --p4info-out datapath/pipeline.p4info.txt`.
P4INFO_FILE = "pipeline.p4info.txt"


def profile_id(table: Table) -> int:
    return _PROFILE_PREFIX | (table.id & 0xFFFFFF)


def counter_id(table: Table) -> int:
    return _COUNTER_PREFIX | (table.id & 0xFFFFFF)


def p4info(p: Pipeline = PIPELINE) -> p4i.P4Info:
    """P4Info for the pipeline (p4info.proto), the contract sent to the target."""
    info = p4i.P4Info()
    info.pkg_info.name = p.name
    info.pkg_info.version = "1"
    info.pkg_info.arch = "multinet-ipu"
    info.type_info.new_types[PORT_TYPE].translated_type.uri = PORT_TYPE_URI
    info.type_info.new_types[PORT_TYPE].translated_type.sdn_string.SetInParent()
    for a in p.actions:
        pa = info.actions.add()
        pa.preamble.id, pa.preamble.name, pa.preamble.alias = a.id, a.name, a.name
        for prm in a.params:
            # A translated type exposed as a string has no bitwidth (spec 8.4.x, "Trade-off for v1.x").
            pp = pa.params.add(id=prm.id, name=prm.name, bitwidth=0 if prm.string else prm.bitwidth)
            if prm.string:
                pp.type_name.name = PORT_TYPE
    for t in p.tables:
        pt = info.tables.add()
        pt.preamble.id, pt.preamble.name, pt.preamble.alias = t.id, t.name, t.name
        pt.size = t.size
        for f in t.fields:
            mf = pt.match_fields.add(id=f.id, name=f.name, bitwidth=0 if f.string else f.bitwidth)
            mf.match_type = getattr(p4i.MatchField.MatchType, f.match.upper())
            if f.string:
                mf.type_name.name = PORT_TYPE
        for name in t.actions:
            pt.action_refs.add(id=p.action(name).id)
        pt.action_refs.add(id=p.action(NO_ACTION).id, scope=p4i.ActionRef.DEFAULT_ONLY)
        pt.const_default_action_id = p.action(NO_ACTION).id
        pt.initial_default_action.action_id = p.action(NO_ACTION).id
        if t.selector:
            pt.implementation_id = profile_id(t)
            prof = info.action_profiles.add(with_selector=True, size=t.size * t.max_group_size)
            prof.preamble.id, prof.preamble.name = profile_id(t), f"{t.name}_selector"
            prof.table_ids.append(t.id)
            prof.max_group_size = t.max_group_size
            prof.sum_of_weights.SetInParent()  # the target makes one bucket per unit of weight
        if t.counters:
            dc = info.direct_counters.add(direct_table_id=t.id)
            dc.preamble.id, dc.preamble.name = counter_id(t), f"{t.name}_counter"
            dc.spec.unit = p4i.CounterSpec.BOTH
            pt.direct_resource_ids.append(counter_id(t))
    return info


def p4info_text(p: Pipeline = PIPELINE) -> str:
    """The P4Info in protobuf text format, as p4c writes `--p4runtime-files x.p4info.txt`."""
    text: str = text_format.MessageToString(p4info(p))
    return text
