"""Table entries as plain values, and their P4Runtime encoding.

An `Entry` is what the compiler produces, the client diffs, the target stores
and the trace model evaluates. Values are ints (addresses as integers, MACs as
48-bit ints) or strings (port names). A missing ternary/range field is the
spec's "don't care" (P4Runtime 9.1.1: it must be omitted, not sent as zero).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from finsy.proto import p4r, rpc_code

from datapath.pipeline import NO_ACTION, PIPELINE, Field, Pipeline, Table

Value = int | str


# Match values and action calls are NamedTuples rather than dataclasses: the
# client diffs tens of thousands of entries per change, and tuple hashing and
# comparison run in C (5x faster). A field's match kind is fixed by its table,
# so two kinds with equal tuples never meet in one key.
class Exact(NamedTuple):
    value: Value


class Lpm(NamedTuple):
    value: int
    prefix_len: int


class Ternary(NamedTuple):
    value: int
    mask: int


class Range(NamedTuple):
    low: int
    high: int


Match = Exact | Lpm | Ternary | Range


class ActionCall(NamedTuple):
    name: str
    params: tuple[Value, ...] = ()
    weight: int = 1


@dataclass(frozen=True)
class Entry:
    table: str
    match: tuple[tuple[str, Match], ...]  # by field name, in the table's field order
    actions: tuple[ActionCall, ...]  # one for direct tables; the group for selector tables
    priority: int = 0
    # The controller's opaque cookie (TableEntry.metadata): stored and returned
    # on Read, never part of the key (P4Runtime 9.1, read-write symmetry).
    metadata: bytes = b""

    @property
    def key(self) -> tuple[str, tuple[tuple[str, Match], ...], int]:
        return (self.table, self.match, self.priority)

    def get(self, name: str) -> Match | None:
        for field_name, m in self.match:  # a few fields: a scan beats building a dict
            if field_name == name:
                return m
        return None


class P4Error(Exception):
    """A P4Runtime error with its canonical code (google.rpc.Code)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def entry(table: str, match: dict[str, Match], *actions: ActionCall, priority: int = 0,
          p: Pipeline = PIPELINE) -> Entry:
    """Build an entry with fields in the table's declared order.

    A "don't care" match (an LPM of prefix 0, a ternary with an all-zero mask)
    is dropped here, as P4Runtime 9.1.1 wants it omitted on the wire, so the
    entry equals what a Read returns.
    """
    t = p.table(table)
    unknown = set(match) - {f.name for f in t.fields}
    if unknown:
        raise ValueError(f"table {table}: unknown fields {sorted(unknown)}")
    ordered = tuple((f.name, match[f.name]) for f in t.fields if f.name in match and not _dont_care(match[f.name]))
    return Entry(table, ordered, tuple(actions), priority)


def _dont_care(m: Match) -> bool:
    return (isinstance(m, Lpm) and m.prefix_len == 0) or (isinstance(m, Ternary) and m.mask == 0)


def ip(text: str) -> int:
    """An address of either family as the integer the tables hold (ValueError if none)."""
    return parse_ip(text)[1]


def parse_ip(text: str) -> tuple[int, int]:
    """(4 or 6, value) of an address, as `ipaddress.ip_address` reads it; ValueError if none.

    The C parser first: ipaddress parses each octet in Python, which was most of
    compiling 10,000 Services (two addresses parsed per endpoint). inet_pton
    accepts a subset of what ipaddress does, to the same values; the rest (an
    IPv6 zone, or no address) goes to ipaddress, which also words the error.
    """
    for family, version in _FAMILIES:
        try:
            return version, int.from_bytes(socket.inet_pton(family, text), "big")
        except (OSError, TypeError, ValueError):
            pass
    address = ipaddress.ip_address(text)
    return address.version, int(address)


_FAMILIES = ((socket.AF_INET, 4), (socket.AF_INET6, 6))


def ip_text(value: int, width: int = 32) -> str:
    """An address value of a `width`-bit field (32: IPv4, 128: IPv6) as text."""
    return str(ipaddress.IPv4Address(value) if width == 32 else ipaddress.IPv6Address(value))


def version_of(text: str) -> int:
    """4 or 6: the family of an address or CIDR."""
    return ipaddress.ip_network(text, strict=False).version


def mac(text: str) -> int:
    return int(text.replace(":", "").replace("-", ""), 16)


def mac_text(value: int) -> str:
    raw = f"{value:012x}"
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def prefix(cidr: str) -> Lpm:
    net = ipaddress.ip_network(cidr, strict=False)
    return Lpm(int(net.network_address), net.prefixlen)


# --- encoding -----------------------------------------------------------------


def _bytes(value: Value) -> bytes:
    if isinstance(value, str):
        return value.encode()
    # Canonical binary string: shortest big-endian form (spec 8.4.1).
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _int(raw: bytes, bitwidth: int, what: str) -> int:
    value = int.from_bytes(raw, "big")
    if not raw:
        # Spec 8.4 (Bytestrings): an empty string is rejected, as one too wide is, with OUT_OF_RANGE.
        raise P4Error(rpc_code.OUT_OF_RANGE, f"{what}: empty value")
    if value >= 1 << bitwidth:
        raise P4Error(rpc_code.OUT_OF_RANGE, f"{what}: {value} does not fit {bitwidth} bits")
    return value


def _str(raw: bytes, what: str) -> str:
    try:
        text = raw.decode()
    except UnicodeDecodeError as err:
        raise P4Error(rpc_code.INVALID_ARGUMENT, f"{what}: not an SDN string") from err
    if not text or len(text) > 15:
        raise P4Error(rpc_code.INVALID_ARGUMENT, f"{what}: port name {text!r} must be 1-15 characters")
    return text


def encode(e: Entry, p: Pipeline = PIPELINE, with_action: bool = True,
           into: p4r.TableEntry | None = None) -> p4r.TableEntry:
    """The entry on the wire; without its action for a key (DELETE, a direct counter's entry).
    Written `into` an empty message when given (a request's own: no copy)."""
    t = p.table(e.table)
    out = p4r.TableEntry() if into is None else into
    out.table_id, out.priority, out.metadata = t.id, e.priority, e.metadata
    for name, m in e.match:
        if _dont_care(m):
            continue  # omitted, never sent as zero (spec 9.1.1)
        f = t.field(name)
        fm = out.match.add(field_id=f.id)
        if isinstance(m, Exact):
            fm.exact.value = _bytes(m.value)
        elif isinstance(m, Lpm):
            fm.lpm.value, fm.lpm.prefix_len = _bytes(m.value), m.prefix_len
        elif isinstance(m, Ternary):
            fm.ternary.value, fm.ternary.mask = _bytes(m.value), _bytes(m.mask)
        else:
            fm.range.low, fm.range.high = _bytes(m.low), _bytes(m.high)
    if not with_action:
        return out
    if t.selector:
        for call in e.actions:
            pa = out.action.action_profile_action_set.action_profile_actions.add(weight=call.weight)
            _encode_action(pa.action, call, p)
    elif e.actions:
        _encode_action(out.action.action, e.actions[0], p)
    return out


def _encode_action(out: p4r.Action, call: ActionCall, p: Pipeline) -> None:
    a = p.action(call.name)
    out.action_id = a.id
    for prm, value in zip(a.params, call.params, strict=True):
        out.params.add(param_id=prm.id, value=_bytes(value))


def decode(te: p4r.TableEntry, p: Pipeline = PIPELINE, with_action: bool = True, filter: bool = False) -> Entry:
    """Decode and validate a table entry; raises P4Error naming the problem.

    DELETE carries only the key (spec 9.1), hence `with_action=False`; a Read
    filter may also give only some fields (`filter=True`).
    """
    t = p.table_by_id(te.table_id)
    if t is None:
        raise P4Error(rpc_code.NOT_FOUND, f"unknown table id {te.table_id}")
    by_id = t.fields_by_id
    match: dict[str, Match] = {}
    for fm in te.match:
        f = by_id.get(fm.field_id)
        if f is None:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{t.name}: unknown field id {fm.field_id}")
        if f.name in match:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{t.name}.{f.name}: given twice")
        match[f.name] = _decode_match(t, f, fm)
    # Only exact fields are required: an omitted LPM field is the prefix-0
    # "don't care" (spec 9.1.1), as an omitted ternary or range field is.
    for name in () if filter else t.required:
        if name not in match:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{t.name}.{name}: required exact field missing")
    if t.needs_priority and te.priority <= 0 and not filter:
        raise P4Error(rpc_code.INVALID_ARGUMENT, f"{t.name}: ternary/range table needs priority > 0")
    if not t.needs_priority and te.priority != 0:
        raise P4Error(rpc_code.INVALID_ARGUMENT, f"{t.name}: priority must be 0 for exact/lpm tables")
    actions = _decode_actions(t, te, p) if with_action else ()
    ordered = tuple((f.name, match[f.name]) for f in t.fields if f.name in match)
    return Entry(t.name, ordered, actions, te.priority, te.metadata)


def _decode_match(t: Table, f: Field, fm: p4r.FieldMatch) -> Match:
    what = f"{t.name}.{f.name}"
    kind = fm.WhichOneof("field_match_type")
    if kind != f.match:
        raise P4Error(rpc_code.INVALID_ARGUMENT, f"{what}: expected {f.match} match, got {kind}")
    if kind == "exact":
        return Exact(_str(fm.exact.value, what) if f.string else _int(fm.exact.value, f.bitwidth, what))
    if kind == "lpm":
        value, plen = _int(fm.lpm.value, f.bitwidth, what), fm.lpm.prefix_len
        if not 0 < plen <= f.bitwidth:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{what}: prefix length {plen} (0 must be omitted)")
        if value & ((1 << (f.bitwidth - plen)) - 1):
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{what}: bits beyond the prefix are set")
        return Lpm(value, plen)
    if kind == "ternary":
        value, mask = _int(fm.ternary.value, f.bitwidth, what), _int(fm.ternary.mask, f.bitwidth, what)
        if len(fm.ternary.value) > len(fm.ternary.mask):
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{what}: value string longer than the mask's")
        if mask == 0:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{what}: all-zero mask must be omitted")
        if value & ~mask:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{what}: value has bits outside the mask")
        return Ternary(value, mask)
    low, high = _int(fm.range.low, f.bitwidth, what), _int(fm.range.high, f.bitwidth, what)
    if low > high:
        raise P4Error(rpc_code.INVALID_ARGUMENT, f"{what}: low {low} > high {high}")
    if low == 0 and high == (1 << f.bitwidth) - 1:
        raise P4Error(rpc_code.INVALID_ARGUMENT, f"{what}: full range must be omitted")
    return Range(low, high)


def _decode_actions(t: Table, te: p4r.TableEntry, p: Pipeline) -> tuple[ActionCall, ...]:
    kind = te.action.WhichOneof("type")
    if t.selector:
        if kind != "action_profile_action_set":
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{t.name}: needs a one-shot action_profile_action_set")
        members = te.action.action_profile_action_set.action_profile_actions
        if not 0 < len(members) <= t.max_group_size:
            raise P4Error(rpc_code.INVALID_ARGUMENT,
                          f"{t.name}: group of {len(members)} members (1..{t.max_group_size})")
        calls = []
        for m in members:
            if m.weight <= 0:
                raise P4Error(rpc_code.INVALID_ARGUMENT, f"{t.name}: member weight must be > 0")
            calls.append(_decode_action(t, m.action, p, m.weight))
        # The selector's size semantics are sum_of_weights (spec "One Shot Action
        # Selector Programming"); the target realizes one bucket per unit of weight.
        total = sum(c.weight for c in calls)
        if total > t.max_group_size:
            raise P4Error(rpc_code.INVALID_ARGUMENT,
                          f"{t.name}: weights sum to {total}, more than max_group_size {t.max_group_size}")
        return tuple(calls)
    if kind != "action":
        raise P4Error(rpc_code.INVALID_ARGUMENT, f"{t.name}: needs a direct action")
    return (_decode_action(t, te.action.action, p, 1),)


def _decode_action(t: Table, pa: p4r.Action, p: Pipeline, weight: int) -> ActionCall:
    a = p.action_by_id(pa.action_id)
    if a is not None and a.name == NO_ACTION:
        # Valid for every table, but only as its default action (ActionRef scope DEFAULT_ONLY).
        raise P4Error(rpc_code.PERMISSION_DENIED, f"{t.name}: {NO_ACTION} is only the default action")
    if a is None or a.name not in t.actions:
        raise P4Error(rpc_code.INVALID_ARGUMENT, f"{t.name}: action id {pa.action_id} not allowed")
    given = {prm.param_id: prm.value for prm in pa.params}
    if len(given) != len(a.params) or len(pa.params) != len(a.params):
        raise P4Error(rpc_code.INVALID_ARGUMENT, f"{t.name}/{a.name}: wrong parameters")
    values: list[Value] = []
    for prm in a.params:
        raw = given.get(prm.id)
        if raw is None:  # as many as declared, but not the declared ones
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{t.name}/{a.name}: wrong parameters")
        value = int.from_bytes(raw, "big")
        if prm.string or not raw or value >> prm.bitwidth:
            # The checks below name the parameter: its name is built only here, as a
            # Service's ten backends would otherwise build twenty names per entry.
            what = f"{t.name}/{a.name}.{prm.name}"
            values.append(_str(raw, what) if prm.string else _int(raw, prm.bitwidth, what))
        else:
            values.append(value)
    return ActionCall(a.name, tuple(values), weight)


_ADDRESS_FIELDS = {"dst", "vip", "pod_ip", "ip", "peer", "vtep"}
_ADDRESS_PARAMS = {("to_tunnel", 0): 32, ("dnat", 0): 32, ("dnat6", 0): 128}


def describe(e: Entry, p: Pipeline = PIPELINE) -> str:
    """One line for logs, errors and `multinet trace`."""
    t = p.table(e.table)
    parts = [f"{name}={_describe_match(m, t.field(name).bitwidth if name in _ADDRESS_FIELDS else 0)}"
             for name, m in e.match]
    acts = ", ".join(
        f"{c.name}({', '.join(_describe_param(c.name, i, v) for i, v in enumerate(c.params))})"
        + (f"x{c.weight}" if c.weight != 1 else "")
        for c in e.actions
    )
    prio = f" prio={e.priority}" if e.priority else ""
    return f"{e.table}[{' '.join(parts)}{prio}] -> {acts}"


def _describe_param(action: str, index: int, value: Value) -> str:
    if isinstance(value, int) and (action, index) in _ADDRESS_PARAMS:
        return ip_text(value, _ADDRESS_PARAMS[(action, index)])
    if isinstance(value, int) and action == "set_dmac":
        return mac_text(value)
    return str(value)


def _describe_match(m: Match, address_width: int) -> str:
    """`address_width`: the field's width when it holds an address, else 0."""
    if isinstance(m, Exact):
        return ip_text(m.value, address_width) if address_width and isinstance(m.value, int) else str(m.value)
    if isinstance(m, Lpm):
        return f"{ip_text(m.value, address_width or 32)}/{m.prefix_len}"
    if isinstance(m, Ternary):
        hostbits = ~m.mask & ((1 << (address_width or 32)) - 1)
        if address_width and not hostbits & (hostbits + 1):  # a prefix mask
            return f"{ip_text(m.value, address_width)}/{bin(m.mask).count('1')}"
        if not m.mask & (m.mask + 1):  # all ones: an exact value
            return str(m.value)
        return f"{m.value:#x}&&&{m.mask:#x}"
    return f"{m.low}..{m.high}"


def dedupe(entries: Iterable[Entry]) -> dict[tuple[object, ...], Entry]:
    """Entries by key; a later duplicate key wins."""
    return {e.key: e for e in entries}
