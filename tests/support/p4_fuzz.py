"""Generated P4Runtime table writes, built from a P4Info, and a model of the accepted ones.

Each generated update is a sound entry (values the P4Info and the target's
realizers accept: ports are links that exist, tunnels are /32, policy masks
are prefixes) or one with a single flaw, named, whose refusal codes the
spec gives (sections 8.4 Bytestrings, 9.1 TableEntry, 12 Write). Key fields
come from small pools, so inserts collide, deletes find entries or miss them
and tables fill up. The model holds what the target answered OK for, in its
own terms (ints and strings, never the wire's bytes), so a Read back is
compared without trusting the target's encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from finsy.proto import p4i, p4r, rpc_code
from hypothesis import strategies as st

C = rpc_code
INSERT, MODIFY, DELETE = p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE
OPS = {INSERT: "INSERT", MODIFY: "MODIFY", DELETE: "DELETE", p4r.Update.UNSPECIFIED: "UNSPECIFIED"}
NETWORKS = (1, 2, (1 << 24) - 1)
# Refusal codes per flaw; a target may also refuse for the entry's state first.
FLAWS: dict[str, frozenset[int]] = {
    "unknown table": frozenset({C.NOT_FOUND, C.INVALID_ARGUMENT}),
    "unknown field": frozenset({C.NOT_FOUND, C.INVALID_ARGUMENT}),
    "field twice": frozenset({C.INVALID_ARGUMENT}),
    "too wide": frozenset({C.OUT_OF_RANGE}),
    "empty bytestring": frozenset({C.OUT_OF_RANGE, C.INVALID_ARGUMENT}),
    "exact field missing": frozenset({C.INVALID_ARGUMENT}),
    "wrong match kind": frozenset({C.INVALID_ARGUMENT}),
    "bits past the prefix": frozenset({C.INVALID_ARGUMENT}),
    "prefix length out of range": frozenset({C.INVALID_ARGUMENT}),
    "priority": frozenset({C.INVALID_ARGUMENT}),
    "is_const": frozenset({C.INVALID_ARGUMENT}),
    "update type unspecified": frozenset({C.INVALID_ARGUMENT}),
    # An INSERT into a full port table may be refused for the full table first
    # (the spec orders neither check before the other).
    "no port of that name": frozenset({C.FAILED_PRECONDITION, C.INVALID_ARGUMENT, C.NOT_FOUND, C.RESOURCE_EXHAUSTED}),
    "port name not UTF-8": frozenset({C.INVALID_ARGUMENT}),
    "default entry": frozenset({C.INVALID_ARGUMENT, C.PERMISSION_DENIED}),
    "not a table entry": frozenset({C.UNIMPLEMENTED, C.INVALID_ARGUMENT}),
    # Action flaws: refused for INSERT and MODIFY, ignored by DELETE (spec 9.1).
    "no action": frozenset({C.INVALID_ARGUMENT}),
    "action not the table's": frozenset({C.INVALID_ARGUMENT}),
    "NoAction": frozenset({C.PERMISSION_DENIED, C.INVALID_ARGUMENT}),
    "parameter missing": frozenset({C.INVALID_ARGUMENT}),
    "parameter too wide": frozenset({C.OUT_OF_RANGE, C.INVALID_ARGUMENT}),
    "selector weight 0": frozenset({C.INVALID_ARGUMENT}),
    "selector group too large": frozenset({C.INVALID_ARGUMENT, C.RESOURCE_EXHAUSTED}),
    "direct action on a selector table": frozenset({C.INVALID_ARGUMENT}),
    # What this target cannot realize (it says so rather than program something else).
    "tunnel to a prefix": frozenset({C.UNIMPLEMENTED}),
    "mask not a prefix": frozenset({C.UNIMPLEMENTED}),
}
ACTION_FLAWS = frozenset({"no action", "action not the table's", "NoAction", "parameter missing",
                          "parameter too wide", "selector weight 0", "selector group too large",
                          "direct action on a selector table", "tunnel to a prefix"})

Key = tuple[int, tuple[tuple[int, tuple[Any, ...]], ...], int]  # table id, (field id, match), priority
Action = tuple[Any, ...]


def canonical(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


class Info:
    """The parts of a P4Info a generator and a Read check need."""

    def __init__(self, info: p4i.P4Info) -> None:
        self.info = info
        self.tables = {t.preamble.id: t for t in info.tables}
        self.by_name = {t.preamble.name: t for t in info.tables}
        self.actions = {a.preamble.id: a for a in info.actions}
        self.action_ids = {a.preamble.name: a.preamble.id for a in info.actions}
        self.max_group = {p.table_ids[0]: p.max_group_size for p in info.action_profiles}

    def field(self, table: int, field_id: int) -> p4i.MatchField:
        found: p4i.MatchField = next(f for f in self.tables[table].match_fields if f.id == field_id)
        return found

    def is_string(self, table: int, field_id: int) -> bool:
        return bool(self.field(table, field_id).type_name.name)

    def needs_priority(self, table: int) -> bool:
        kinds = (p4i.MatchField.TERNARY, p4i.MatchField.RANGE)
        return any(f.match_type in kinds for f in self.tables[table].match_fields)


# --- sound entries, in the model's terms ------------------------------------------------


@dataclass(frozen=True)
class Entry:
    table: int
    match: tuple[tuple[int, tuple[Any, ...]], ...]  # (field id, ("exact", v) | ("lpm", v, len) | ...)
    priority: int
    action: Action | None  # ("direct", id, params) | ("set", ((id, params, weight), ...)); None: MODIFY keeps
    metadata: bytes = b""

    @property
    def key(self) -> Key:
        return (self.table, tuple(sorted(self.match)), self.priority)


def _prefix(value: int, plen: int, width: int) -> tuple[Any, ...]:
    mask = ((1 << plen) - 1) << (width - plen)
    return ("lpm", value & mask, plen)


def entries(info: Info, ports: Sequence[str]) -> st.SearchStrategy[Entry]:
    """Sound entries of every table of the multinet pipeline."""
    ids = info.action_ids
    port = st.sampled_from(list(ports))
    net = st.sampled_from(NETWORKS)
    small_ip = st.sampled_from([0x0A010001, 0x0A010002, 0x0A0100FE, 0xC0000207])
    any_ip = st.integers(1, (1 << 32) - 2)

    def table(name: str) -> int:
        return int(info.by_name[name].preamble.id)

    def fid(name: str, fname: str) -> int:
        return int(next(f.id for f in info.by_name[name].match_fields if f.name == fname))

    def direct(name: str, *params: st.SearchStrategy[Any]) -> st.SearchStrategy[Action]:
        return st.tuples(*params).map(lambda ps: ("direct", ids[name], tuple(enumerate(ps, 1))))

    def route(n: int, dst: tuple[Any, ...] | None, act: Action, meta: bytes) -> Entry:
        match = [(fid("route", "network_id"), ("exact", n))] + ([(fid("route", "dst"), dst)] if dst else [])
        return Entry(table("route"), tuple(match), 0, act, meta)

    dsts = st.one_of(st.none(), st.sampled_from([24, 16, 1]).flatmap(
        lambda plen: small_ip.map(lambda v: _prefix(v, plen, 32))))
    metadata = st.binary(max_size=6)
    routes = st.one_of(
        st.builds(route, net, small_ip.map(lambda v: ("lpm", v, 32)),  # a tunnel's route is a /32
                  direct("to_tunnel", any_ip) | direct("to_port", port) | direct("drop"), metadata),
        st.builds(route, net, dsts, direct("to_port", port) | direct("drop"), metadata))
    ports_ = st.builds(lambda p, n, m: Entry(table("port"), ((fid("port", "port"), ("exact", p)),), 0,
                                             ("direct", ids["set_port"], ((1, n),)), m), port, net, metadata)
    neighbors = st.builds(lambda p, ip, mac, m: Entry(
        table("neighbor"), ((fid("neighbor", "port"), ("exact", p)), (fid("neighbor", "ip"), ("exact", ip))), 0,
        ("direct", ids["set_dmac"], ((1, mac),)), m), port, small_ip, st.integers(0, (1 << 48) - 1), metadata)
    member = st.tuples(st.just(ids["dnat"]), st.tuples(st.tuples(st.just(1), any_ip),
                                                       st.tuples(st.just(2), st.integers(0, 65535))),
                       st.integers(1, 3))
    services = st.builds(lambda n, vip, proto, p, group, m: Entry(
        table("service"), ((fid("service", "network_id"), ("exact", n)), (fid("service", "vip"), ("exact", vip)),
                           (fid("service", "proto"), ("exact", proto)), (fid("service", "port"), ("exact", p))), 0,
        ("set", tuple(group)), m), net, small_ip, st.sampled_from([6, 17, 132]), st.sampled_from([53, 80, 65535]),
        st.lists(member, min_size=1, max_size=4), metadata)
    pods = st.builds(lambda n, d, ip, g, m: Entry(
        table("policy_pod"), ((fid("policy_pod", "network_id"), ("exact", n)),
                              (fid("policy_pod", "direction"), ("exact", d)), (fid("policy_pod", "pod_ip"), ("exact", ip))),
        0, ("direct", ids["set_group"], ((1, g),)), m), net, st.integers(0, 1), small_ip, st.sampled_from([1, 2, 3]),
        metadata)

    def rule(d: int, g: int, peer: int | None, proto: int | None, ports_range: tuple[int, int] | None,
             prio: int, m: bytes) -> Entry:
        match: list[tuple[int, tuple[Any, ...]]] = [(fid("policy_rule", "direction"), ("exact", d)),
                                                    (fid("policy_rule", "group"), ("exact", g))]
        if peer is not None:
            mask = ((1 << peer) - 1) << (32 - peer)
            match.append((fid("policy_rule", "peer"), ("ternary", 0x0A010000 & mask, mask)))
        if proto is not None:
            match.append((fid("policy_rule", "proto"), ("ternary", proto, 0xFF)))
        if ports_range is not None:
            match.append((fid("policy_rule", "port"), ("range", *ports_range)))
        return Entry(table("policy_rule"), tuple(match), prio, ("direct", ids["allow"], ()), m)

    ranges = st.sampled_from([(80, 80), (0, 1023), (1024, 65535)])
    rules = st.builds(rule, st.integers(0, 1), st.sampled_from([1, 2]), st.none() | st.sampled_from([8, 16, 32]),
                      st.none() | st.sampled_from([6, 17]), st.none() | ranges, st.integers(1, 3), metadata)
    return st.one_of(routes, ports_, neighbors, services, pods, rules)


# --- the wire form ---------------------------------------------------------------------


def encode(info: Info, e: Entry, pad: int = 0) -> p4r.TableEntry:
    """The TableEntry; `pad` leading zero bytes on integers (spec 8.4: accepted, not canonical)."""
    out = p4r.TableEntry(table_id=e.table, priority=e.priority, metadata=e.metadata)

    def raw(v: int | str) -> bytes:
        return v.encode() if isinstance(v, str) else b"\0" * pad + canonical(v)

    for field_id, m in e.match:
        fm = out.match.add(field_id=field_id)
        if m[0] == "exact":
            fm.exact.value = raw(m[1])
        elif m[0] == "lpm":
            fm.lpm.value, fm.lpm.prefix_len = raw(m[1]), m[2]
        elif m[0] == "ternary":
            fm.ternary.value, fm.ternary.mask = raw(m[1]), raw(m[2])
        else:
            fm.range.low, fm.range.high = raw(m[1]), raw(m[2])
    if e.action is not None and e.action[0] == "direct":
        _action(out.action.action, e.action[1], e.action[2], raw)
    elif e.action is not None:
        for action_id, params, weight in e.action[1]:
            member = out.action.action_profile_action_set.action_profile_actions.add(weight=weight)
            _action(member.action, action_id, params, raw)
    return out


def _action(out: p4r.Action, action_id: int, params: tuple[tuple[int, Any], ...],
            raw: Callable[[int | str], bytes]) -> None:
    out.action_id = action_id
    for param_id, value in params:
        out.params.add(param_id=param_id, value=raw(value))


def decode(info: Info, te: p4r.TableEntry) -> Entry:
    """A TableEntry as read back, in the model's terms (strict: canonical bytes only)."""
    def val(table: int, field_id: int, b: bytes) -> int | str:
        return b.decode() if info.is_string(table, field_id) else int.from_bytes(b, "big")

    match = []
    for fm in te.match:
        kind = fm.WhichOneof("field_match_type")

        def f(b: bytes, field_id: int = fm.field_id) -> int | str:
            return val(te.table_id, field_id, b)

        if kind == "exact":
            m: tuple[Any, ...] = ("exact", f(fm.exact.value))
        elif kind == "lpm":
            m = ("lpm", f(fm.lpm.value), fm.lpm.prefix_len)
        elif kind == "ternary":
            m = ("ternary", f(fm.ternary.value), f(fm.ternary.mask))
        else:
            m = ("range", f(fm.range.low), f(fm.range.high))
        match.append((fm.field_id, m))
    action_kind = te.action.WhichOneof("type")
    if action_kind == "action":
        action: Action | None = ("direct", te.action.action.action_id, _params(info, te.action.action))
    elif action_kind == "action_profile_action_set":
        action = ("set", tuple((m.action.action_id, _params(info, m.action), m.weight)
                               for m in te.action.action_profile_action_set.action_profile_actions))
    else:
        action = None
    return Entry(te.table_id, tuple(match), te.priority, action, te.metadata)


def _params(info: Info, a: p4r.Action) -> tuple[tuple[int, Any], ...]:
    spec = {p.id: p for p in info.actions[a.action_id].params}
    return tuple((p.param_id, p.value.decode() if spec[p.param_id].type_name.name else int.from_bytes(p.value, "big"))
                 for p in a.params)


def not_canonical(te: p4r.TableEntry) -> list[str]:
    """Spec 8.4: what the server returns is canonical (read-write symmetry)."""
    values = [v for fm in te.match for v in (fm.exact.value, fm.lpm.value, fm.ternary.value, fm.ternary.mask,
                                             fm.range.low, fm.range.high) if v]
    values += [p.value for p in te.action.action.params]
    values += [p.value for m in te.action.action_profile_action_set.action_profile_actions for p in m.action.params]
    return [f"{v!r} is not canonical" for v in values if len(v) > 1 and v[0] == 0]
