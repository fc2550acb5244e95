"""Reading nftables counters over netlink, without nft.

`nft list counters` or `nft list map` make nft build its cache of the
whole table first (every rule, every set's elements) and print JSON: at
10,000 Services that is seconds per read. The kernel answers a dump of one
table's counter objects (NFT_MSG_GETOBJ filtered by table and type), or of
one set's elements (NFT_MSG_GETSETELEM), directly; this module asks for
exactly that (uapi linux/netfilter/nf_tables.h), since pyroute2 has no
message for objects. It must run in the IPU namespace (a socket made there).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETSETELEM, NFT_MSG_GETOBJ = 13, 19
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFPROTO_INET = 1
NFT_OBJECT_COUNTER = 1
NLA_TYPE_MASK = 0x3FFF

# Attribute numbers (nf_tables.h).
OBJ_TABLE, OBJ_NAME, OBJ_TYPE, OBJ_DATA = 1, 2, 3, 4
COUNTER_BYTES, COUNTER_PACKETS = 1, 2
ELEM_LIST_TABLE, ELEM_LIST_SET, ELEM_LIST_ELEMENTS = 1, 2, 3
LIST_ELEM = 1
ELEM_KEY, ELEM_DATA, ELEM_EXPR, ELEM_EXPRESSIONS = 1, 2, 7, 10
DATA_VALUE = 1
EXPR_NAME, EXPR_DATA = 1, 2

Counts = tuple[int, int]  # packets, bytes
_HEAD = struct.Struct("HH")  # nlattr: length, type
_U64 = struct.Struct(">Q")


def _attr(kind: int, payload: bytes) -> bytes:
    head = struct.pack("HH", 4 + len(payload), kind)
    return head + payload + b"\0" * (-len(payload) % 4)


def _attrs(data: bytes) -> Iterator[tuple[int, bytes]]:
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("HH", data, offset)
        if length < 4:
            return
        yield kind & NLA_TYPE_MASK, data[offset + 4 : offset + length]
        offset += (length + 3) & ~3


def message(kind: int, flags: int, seq: int, attrs: bytes, family: int = NFPROTO_INET, res_id: int = 0) -> bytes:
    """One nfnetlink message of the nf_tables subsystem: nlmsghdr, nfgenmsg (res_id in network order), attributes."""
    body = struct.pack("!BBH", family, 0, res_id) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_NFTABLES << 8) | kind, flags, seq, 0) + body


def messages(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """Each netlink message in one received datagram: (type, seq, start, end)."""
    offset = 0
    while offset + 16 <= len(data):
        length, mtype, _, seq, _ = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            return
        yield mtype, seq, offset, offset + length
        offset += (length + 3) & ~3


def error_code(data: bytes, start: int) -> int:
    """The errno of an NLMSG_ERROR message at `start` (0: an ack)."""
    return -int(struct.unpack_from("=i", data, start + 16)[0])


def dump(kind: int, attrs: bytes) -> Iterator[bytes]:
    """The payloads (after nfgenmsg) of one dump's answers."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as s:
        s.bind((0, 0))
        s.send(message(kind, NLM_F_REQUEST | NLM_F_DUMP, 1, attrs))
        while True:
            data = s.recv(1 << 20)
            for mtype, _, start, end in messages(data):
                if mtype == NLMSG_DONE:
                    return
                if mtype == NLMSG_ERROR:
                    code = error_code(data, start)
                    if code:
                        raise OSError(code, f"nf_tables dump: {os.strerror(code)}")
                    return
                yield data[start + 20 : end]  # past nlmsghdr and nfgenmsg


def _counter(data: bytes, offset: int = 0, end: int | None = None) -> Counts:
    """The NFTA_COUNTER_PACKETS and _BYTES of a counter's attributes in data[offset:end], read in place."""
    packets = octets = 0
    unpack, stop = _HEAD.unpack_from, len(data) if end is None else end
    while offset + 4 <= stop:
        length, kind = unpack(data, offset)
        if length < 4:
            break
        kind &= NLA_TYPE_MASK
        if kind == COUNTER_PACKETS:
            packets = _U64.unpack_from(data, offset + 4)[0]
        elif kind == COUNTER_BYTES:
            octets = _U64.unpack_from(data, offset + 4)[0]
        offset += (length + 3) & ~3
    return int(packets), int(octets)


def counters_request(table: str) -> bytes:
    """The attributes of a dump of an `inet` table's counter objects (NFT_MSG_GETOBJ)."""
    return _attr(OBJ_TABLE, table.encode() + b"\0") + _attr(OBJ_TYPE, struct.pack(">I", NFT_OBJECT_COUNTER))


def elements_request(table: str, set_name: str) -> bytes:
    """The attributes of a dump of one set's elements (NFT_MSG_GETSETELEM)."""
    return _attr(ELEM_LIST_TABLE, table.encode() + b"\0") + _attr(ELEM_LIST_SET, set_name.encode() + b"\0")


def counters(table: str) -> dict[str, Counts]:
    """Every named counter of an `inet` table: name -> (packets, bytes)."""
    out: dict[str, Counts] = {}
    for payload in dump(NFT_MSG_GETOBJ, counters_request(table)):
        found = dict(_attrs(payload))
        if OBJ_NAME in found and OBJ_DATA in found:
            out[found[OBJ_NAME].rstrip(b"\0").decode()] = _counter(found[OBJ_DATA])
    return out


def element_counters(table: str, set_name: str) -> Iterator[tuple[bytes, bytes, Counts]]:
    """Each element of a set or map with a counter: (key bytes, data bytes, counts).
    Keys and data are the kernel's registers: concatenated fields, each padded to 4 bytes."""
    for payload in dump(NFT_MSG_GETSETELEM, elements_request(table, set_name)):
        for kind, elements in _attrs(payload):
            if kind == ELEM_LIST_ELEMENTS:
                yield from _elements(elements)


def _elements(data: bytes) -> Iterator[tuple[bytes, bytes, Counts]]:
    """The elements of one NFTA_SET_ELEM_LIST_ELEMENTS, parsed in one pass and
    in place: 100,000 of them per read, so no generator, slice or dict per
    attribute, only per element."""
    unpack, end, offset = _HEAD.unpack_from, len(data), 0
    while offset + 4 <= end:
        length, _ = unpack(data, offset)
        if length < 4:
            return
        yield _element(data, offset + 4, offset + length)
        offset += (length + 3) & ~3


def _element(data: bytes, offset: int, end: int) -> tuple[bytes, bytes, Counts]:
    key = value = b""
    counts: Counts = (0, 0)
    unpack = _HEAD.unpack_from
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        if length < 4:
            break
        kind &= NLA_TYPE_MASK
        inner, stop = offset + 4, offset + length
        if kind == ELEM_KEY or kind == ELEM_DATA:
            # One nested NFTA_DATA_VALUE: its payload is the register content.
            nested_length, _ = unpack(data, inner)
            raw = data[inner + 4 : inner + nested_length]
            if kind == ELEM_KEY:
                key = raw
            else:
                value = raw
        elif kind == ELEM_EXPR:
            counts = _expr_counter(data, inner, stop) or counts
        elif kind == ELEM_EXPRESSIONS:  # a list of NFTA_LIST_ELEM, one expression each
            while inner + 4 <= stop:
                item, _ = unpack(data, inner)
                if item < 4:
                    break
                counts = _expr_counter(data, inner + 4, inner + item) or counts
                inner += (item + 3) & ~3
        offset += (length + 3) & ~3
    return key, value, counts


def _expr_counter(data: bytes, offset: int, end: int) -> Counts | None:
    """A `counter` expression's counts (NFTA_EXPR_NAME, NFTA_EXPR_DATA in data[offset:end]); None for another."""
    unpack = _HEAD.unpack_from
    counter, counts = False, (0, 0)
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        if length < 4:
            break
        kind &= NLA_TYPE_MASK
        if kind == EXPR_NAME:
            counter = data.startswith(b"counter\0", offset + 4)
        elif kind == EXPR_DATA:
            counts = _counter(data, offset + 4, offset + length)
        offset += (length + 3) & ~3
    return counts if counter else None
