"""The pipeline description, its P4Info and the entry codec (pure logic)."""

from __future__ import annotations

import pytest
from finsy.proto import p4i, p4r, rpc_code
from hypothesis import given
from hypothesis import strategies as st

from datapath.entries import ActionCall, Exact, Lpm, Match, P4Error, Range, Ternary, decode, encode, entry, ip, prefix
from datapath.pipeline import PIPELINE, p4info, pipeline


def test_p4info_lists_every_table_and_action_with_unique_ids() -> None:
    info = p4info()
    ids = [t.preamble.id for t in info.tables] + [a.preamble.id for a in info.actions]
    assert len(ids) == len(set(ids))
    assert {t.preamble.name for t in info.tables} == {t.name for t in PIPELINE.tables}
    service = next(t for t in info.tables if t.preamble.name == "service")
    assert service.implementation_id == info.action_profiles[0].preamble.id
    assert info.action_profiles[0].with_selector
    assert info.type_info.new_types["PortId_t"].translated_type.WhichOneof("sdn_type") == "sdn_string"
    rule = next(t for t in info.tables if t.preamble.name == "policy_rule")
    kinds = {m.name: m.match_type for m in rule.match_fields}
    assert kinds["peer"] == p4i.MatchField.TERNARY and kinds["port"] == p4i.MatchField.RANGE
    # Fields and params of a type translated to an SDN string carry no bitwidth.
    port = next(t for t in info.tables if t.preamble.name == "port").match_fields[0]
    assert port.type_name.name == "PortId_t" and port.bitwidth == 0
    to_port = next(a for a in info.actions if a.preamble.name == "to_port").params[0]
    assert to_port.type_name.name == "PortId_t" and to_port.bitwidth == 0


def test_table_sizes_are_parameters() -> None:
    info = p4info(pipeline({"service": 12345}))
    assert next(t.size for t in info.tables if t.preamble.name == "service") == 12345
    with pytest.raises(ValueError, match="sizes"):
        pipeline({"nope": 1})


addresses = st.integers(0, 2**32 - 1)


@given(net=st.integers(1, 2**24 - 1), address=addresses, plen=st.integers(1, 32))
def test_route_round_trip(net: int, address: int, plen: int) -> None:
    masked = address & ~((1 << (32 - plen)) - 1) & 0xFFFFFFFF
    e = entry("route", {"network_id": Exact(net), "dst": Lpm(masked, plen)}, ActionCall("to_port", ("mndr1",)))
    assert decode(encode(e)) == e


@given(members=st.lists(st.tuples(addresses, st.integers(1, 65535), st.integers(1, 5)), min_size=1, max_size=20))
def test_service_group_round_trip(members: list[tuple[int, int, int]]) -> None:
    e = entry("service", {"network_id": Exact(7), "vip": Exact(ip("10.96.0.1")), "proto": Exact(6),
                          "port": Exact(80)}, *(ActionCall("dnat", (a, p), w) for a, p, w in members))
    assert decode(encode(e)) == e


def _rule(**match: Match) -> p4r.TableEntry:
    base: dict[str, Match] = {"direction": Exact(0), "group": Exact(1)}
    return encode(entry("policy_rule", {**base, **match}, ActionCall("allow"), priority=1))


@pytest.mark.parametrize("bad, code", [
    (lambda: encode(entry("route", {"network_id": Exact(1), "dst": Lpm(ip("10.0.0.1"), 24)}, ActionCall("drop"))),
     rpc_code.INVALID_ARGUMENT),  # host bits beyond the prefix
    (lambda: _with_field(_rule(), 3, "ternary", b"\x00", b"\x00"), rpc_code.INVALID_ARGUMENT),  # zero mask: omit
    (lambda: _with_field(encode(entry("route", {"network_id": Exact(1)}, ActionCall("drop"))), 2, "lpm", b"\x00", 0),
     rpc_code.INVALID_ARGUMENT),  # prefix 0 must be omitted, not sent
    (lambda: _with_field(_rule(), 3, "ternary", b"\x00\x0a", b"\xff"), rpc_code.INVALID_ARGUMENT),  # value > mask
    (lambda: _with_field(encode(entry("route", {"network_id": Exact(1)}, ActionCall("drop"))), 2, "lpm", b"", 8),
     rpc_code.OUT_OF_RANGE),  # an empty bytestring (spec 8.4)
    (lambda: _rule(peer=Ternary(3, 1)), rpc_code.INVALID_ARGUMENT),  # value outside mask
    (lambda: _rule(port=Range(0, 65535)), rpc_code.INVALID_ARGUMENT),  # full range must be omitted
    (lambda: _rule(port=Range(9, 8)), rpc_code.INVALID_ARGUMENT),
    (lambda: encode(entry("port", {"port": Exact("mndr1")}, ActionCall("set_port", (2**24,)))),
     rpc_code.OUT_OF_RANGE),
    (lambda: encode(entry("policy_rule", {"direction": Exact(0), "group": Exact(1)}, ActionCall("allow"))),
     rpc_code.INVALID_ARGUMENT),  # ternary table without priority
    (lambda: encode(entry("port", {"port": Exact("mndr1")}, ActionCall("drop"))),
     rpc_code.INVALID_ARGUMENT),  # action not in the table
    (lambda: encode(entry("service", {"network_id": Exact(1), "vip": Exact(1), "proto": Exact(6), "port": Exact(80)},
                          ActionCall("dnat", (1, 80), 200), ActionCall("dnat", (2, 80), 100))),
     rpc_code.INVALID_ARGUMENT),  # weights sum beyond max_group_size (sum_of_weights)
])
def test_decode_rejects_invalid_entries(bad: object, code: int) -> None:
    with pytest.raises(P4Error) as caught:
        decode(bad())  # type: ignore[operator]
    assert caught.value.code == code


def _with_field(te: p4r.TableEntry, field_id: int, kind: str, value: bytes, extra: bytes | int) -> p4r.TableEntry:
    fm = te.match.add(field_id=field_id)
    if kind == "ternary":
        assert isinstance(extra, bytes)
        fm.ternary.value, fm.ternary.mask = value, extra
    else:
        assert isinstance(extra, int)
        fm.lpm.value, fm.lpm.prefix_len = value, extra
    return te


def test_an_omitted_lpm_field_is_the_default_route() -> None:
    # P4Runtime 9.1.1: the prefix-0 LPM is "don't care" and is omitted on the wire.
    te = p4r.TableEntry(table_id=PIPELINE.table("route").id)
    te.match.add(field_id=1).exact.value = b"\x07"
    te.action.action.action_id = PIPELINE.action("drop").id
    e = decode(te)
    assert e.get("dst") is None
    built = entry("route", {"network_id": Exact(7), "dst": prefix("0.0.0.0/0")}, ActionCall("drop"))
    assert built == e and [m.field_id for m in encode(built).match] == [1]
    rule = entry("policy_rule", {"direction": Exact(0), "group": Exact(1), "peer": Ternary(0, 0)},
                 ActionCall("allow"), priority=1)
    assert rule.get("peer") is None and decode(encode(rule)) == rule


def test_metadata_is_kept_and_is_not_part_of_the_key() -> None:
    e = entry("route", {"network_id": Exact(1), "dst": prefix("10.0.0.0/8")}, ActionCall("drop"))
    te = encode(e)
    te.metadata = b"cookie"
    got = decode(te)
    assert got.metadata == b"cookie" and got.key == e.key and encode(got).metadata == b"cookie"


def test_delete_needs_only_the_key() -> None:
    e = entry("route", {"network_id": Exact(1), "dst": prefix("10.0.0.0/8")}, ActionCall("drop"))
    te = encode(e)
    te.ClearField("action")
    assert decode(te, with_action=False).key == e.key
    with pytest.raises(P4Error):
        decode(te)


def test_padded_bytestrings_are_accepted_and_encoded_back_canonically() -> None:
    # Spec 8.4: leading zero bytes are accepted; what the target returns is the shortest form.
    e = entry("route", {"network_id": Exact(7), "dst": prefix("10.0.0.0/8")}, ActionCall("drop"))
    te = encode(e)
    te.match[0].exact.value = b"\x00\x00\x00\x07"
    te.match[1].lpm.value = b"\x00\x0a\x00\x00\x00"
    assert decode(te) == e
    assert encode(decode(te)).match[0].exact.value == b"\x07"
    with pytest.raises(P4Error) as caught:
        te.match[0].exact.value = b"\x01\x00\x00\x00"  # 2**24 does not fit 24 bits
        decode(te)
    assert caught.value.code == rpc_code.OUT_OF_RANGE
