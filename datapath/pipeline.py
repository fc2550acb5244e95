"""The pipeline contract: one declarative description of the offload tables.

P4Info, the IPU target's validation and realization, the client's encoding and
the trace model all derive from `PIPELINE` (or `pipeline(sizes)`). Every
forwarding, service and policy key carries the network id, so two networks may
use the same addresses.

Dual stack: every table whose key or action holds an address exists once per
family, made from one template (`route` and `route6`, ...), as P4 programs
keep `ipv4_table` and `ipv6_table` apart; the underlay stays IPv4, so
`to_tunnel` takes an IPv4 VTEP in both. Policy groups are one namespace: an
IPv4 and an IPv6 `policy_pod` entry may name the same group, whose rules live
in `policy_rule` and `policy_rule6`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
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

    @cached_property  # asked of every update a target decodes
    def needs_priority(self) -> bool:
        return any(f.match in ("ternary", "range") for f in self.fields)

    @cached_property
    def required(self) -> tuple[str, ...]:
        """The fields every entry gives: the exact ones (an omitted LPM, ternary
        or range field is the "don't care", spec 9.1.1)."""
        return tuple(f.name for f in self.fields if f.match == "exact")

    @cached_property
    def fields_by_id(self) -> dict[int, Field]:
        return {f.id: f for f in self.fields}

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
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no table {name!r}") from None

    def table_by_id(self, table_id: int) -> Table | None:
        return self._by_id.get(table_id)

    def action(self, name: str) -> Action:
        try:
            return self._actions_by_name[name]
        except KeyError:
            raise KeyError(f"no action {name!r}") from None

    def action_by_id(self, action_id: int) -> Action | None:
        return self._actions_by_id.get(action_id)

    # Indexes made on first use: every update encoded or decoded looks its table and action up.
    @cached_property
    def _by_name(self) -> dict[str, Table]:
        return {t.name: t for t in self.tables}

    @cached_property
    def _by_id(self) -> dict[int, Table]:
        return {t.id: t for t in self.tables}

    @cached_property
    def _actions_by_name(self) -> dict[str, Action]:
        return {a.name: a for a in self.actions}

    @cached_property
    def _actions_by_id(self) -> dict[int, Action]:
        return {a.id: a for a in self.actions}


_NET = 24  # network ids are VNIs
_ACTIONS = (
    Action("set_port", _ACTION_PREFIX | 1, (Param("network_id", 1, _NET),)),
    Action("to_port", _ACTION_PREFIX | 2, (Param("port", 1, 32, string=True),)),
    Action("to_tunnel", _ACTION_PREFIX | 3, (Param("vtep", 1, 32),)),
    Action("drop", _ACTION_PREFIX | 4),
    Action("set_dmac", _ACTION_PREFIX | 5, (Param("mac", 1, 48),)),
    Action("dnat", _ACTION_PREFIX | 6, (Param("ip", 1, 32), Param("port", 2, 16))),
    Action("dnat6", _ACTION_PREFIX | 10, (Param("ip", 1, 128), Param("port", 2, 16))),
    Action("set_group", _ACTION_PREFIX | 7, (Param("group", 1, 32),)),
    Action("allow", _ACTION_PREFIX | 8),
    # Every table's miss behaviour, declared as its const default action: a
    # miss does nothing here and later stages decide (no route: dropped; no
    # policy_pod entry: not isolated; no allowing rule: denied).
    Action(NO_ACTION, _ACTION_PREFIX | 9),
    # Address-less (layer 2) networks: the port is bridged into its network's
    # segment instead of routed, and unknown/broadcast/multicast frames are
    # replicated to each remote VTEP of the segment (head-end replication).
    Action("set_bridge", _ACTION_PREFIX | 11, (Param("network_id", 1, _NET),)),
    Action("replicate", _ACTION_PREFIX | 12),
    # Source guard: a routed port's packets are admitted only from an
    # address the port holds, with that address's MAC.
    Action("allow_source", _ACTION_PREFIX | 13, (Param("mac", 1, 48),)),
)

DEFAULT_SIZES: Mapping[str, int] = {
    "port": 4096,
    "route": 65536,
    "neighbor": 65536,
    "service": 16384,
    "policy_pod": 16384,
    "policy_rule": 262144,
    "route6": 65536,
    "neighbor6": 65536,
    "service6": 16384,
    "policy_pod6": 16384,
    "policy_rule6": 262144,
    "flood": 65536,
    "source": 65536,
    "source6": 65536,
}

# The tables of each family: the IPv6 table of an IPv4 one is named with a "6".
FAMILY_TABLES = ("route", "neighbor", "service", "policy_pod", "policy_rule", "source")
ADDRESS_WIDTH = {4: 32, 6: 128}


def family_table(name: str, version: int) -> str:
    """The table of `name`'s kind for an address family (4 or 6)."""
    return name if version == 4 else f"{name}6"


def table_family(name: str) -> int:
    """The address family of a table (4 for the family-less port table)."""
    return 6 if name.endswith("6") and name[:-1] in FAMILY_TABLES else 4


def pipeline(sizes: Mapping[str, int] | None = None, max_group_size: int = 256) -> Pipeline:
    """The pipeline with table sizes as parameters, as on a real IPU."""
    s = {**DEFAULT_SIZES, **(sizes or {})}
    unknown = set(s) - set(DEFAULT_SIZES)
    if unknown:
        raise ValueError(f"sizes: unknown tables {sorted(unknown)}")
    t = _TABLE_PREFIX
    # Port -> network: which network a representor's packets belong to.
    port = Table("port", t | 1, (Field("port", 1, 32, "exact", string=True),), ("set_port", "set_bridge"), s["port"])
    # Head-end replication of a layer 2 segment: one entry per remote VTEP.
    flood = Table("flood", t | 12, (Field("network_id", 1, _NET, "exact"), Field("vtep", 2, 32, "exact")),
                  ("replicate",), s["flood"])
    v4 = _family_tables(4, s, max_group_size, {"route": 2, "neighbor": 3, "service": 4, "policy_pod": 5,
                                               "policy_rule": 6, "source": 13})
    v6 = _family_tables(6, s, max_group_size, {"route": 7, "neighbor": 8, "service": 9, "policy_pod": 10,
                                               "policy_rule": 11, "source": 14})
    tables = (port, *v4, *v6, flood)
    return Pipeline("multinet_ipu", tables, _ACTIONS)


def _family_tables(version: int, s: Mapping[str, int], max_group_size: int,
                   ids: Mapping[str, int]) -> tuple[Table, ...]:
    """The address-holding tables of one family, from the one template."""
    w, t = ADDRESS_WIDTH[version], _TABLE_PREFIX

    def name(kind: str) -> str:
        return family_table(kind, version)

    return (
        # L3 forwarding per network: to a local port, through the network's
        # VXLAN tunnel to a remote node (an IPv4 VTEP: the underlay), or dropped.
        Table(name("route"), t | ids["route"],
              (Field("network_id", 1, _NET, "exact"), Field("dst", 2, w, "lpm")),
              ("to_port", "to_tunnel", "drop"), s[name("route")]),
        # Neighbour entries: the MAC of an address behind a local port.
        Table(name("neighbor"), t | ids["neighbor"],
              (Field("port", 1, 32, "exact", string=True), Field("ip", 2, w, "exact")),
              ("set_dmac",), s[name("neighbor")]),
        # Service load balancing: (network, VIP, protocol, port) -> a selector
        # group of backends; connection tracking keeps established flows on
        # their backend when the group changes.
        Table(name("service"), t | ids["service"],
              (Field("network_id", 1, _NET, "exact"), Field("vip", 2, w, "exact"), Field("proto", 3, 8, "exact"),
               Field("port", 4, 16, "exact")),
              ("dnat" if version == 4 else "dnat6",), s[name("service")],
              selector=True, max_group_size=max_group_size, counters=True),
        # Policy: pod -> policy group per direction. A pod with an entry is
        # isolated in that direction (NetworkPolicy semantics).
        Table(name("policy_pod"), t | ids["policy_pod"],
              (Field("network_id", 1, _NET, "exact"), Field("direction", 2, 1, "exact"),
               Field("pod_ip", 3, w, "exact")),
              ("set_group",), s[name("policy_pod")], counters=True),
        # Policy rules of a group: peer prefix (ipBlock/except expanded to
        # prefixes), protocol, port range (port..endPort). Any match allows.
        Table(name("policy_rule"), t | ids["policy_rule"],
              (Field("direction", 1, 1, "exact"), Field("group", 2, 32, "exact"), Field("peer", 3, w, "ternary"),
               Field("proto", 4, 8, "ternary"), Field("port", 5, 16, "range")),
              ("allow",), s[name("policy_rule")]),
        # Source guard (anti-spoofing): the addresses a routed port may send
        # from, each with its MAC. A packet from a routed port whose source
        # misses here, or whose source MAC differs, is dropped at the port;
        # IPv6 link-local and unspecified sources (neighbour discovery, DAD)
        # pass with the MAC of any of the port's entries. A port without
        # entries sends nothing.
        Table(name("source"), t | ids["source"],
              (Field("port", 1, 32, "exact", string=True), Field("ip", 2, w, "exact")),
              ("allow_source",), s[name("source")]),
    )


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
