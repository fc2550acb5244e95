"""Changing set elements and counter objects over netlink, without nft.

For any element command nft 1.0.6 first reads every chain, set and named
counter of the table from the kernel (its cache): at 10,000 Services that is
about 60 ms before it sends the few bytes of one endpoint change, and a
large Write pays nft's parse of every line on top. A batch made only of
element changes (values, a `goto` to a chain, a named object) and counter
objects is sent here instead, as nft would send it: one nfnetlink batch
(NFNL_MSG_BATCH_BEGIN, NFT_MSG_NEWOBJ / NEWSETELEM / DELSETELEM / DELOBJ,
NFNL_MSG_BATCH_END), one kernel transaction, all or nothing. The same
changes render as nft text (`text()`) when the batch also holds other
commands, so a Write is still one transaction.

Keys and data are the kernel's registers: concatenated fields, each padded
to 4 bytes (as nftobj.py reads them back). A set whose declaration carries
expressions (`counter`) gets them on each new element from the kernel.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby
from dataclasses import dataclass

from datapath.target.kernel.nftobj import (COUNTER_BYTES, COUNTER_PACKETS, DATA_VALUE, ELEM_DATA, ELEM_KEY,
                                           ELEM_LIST_ELEMENTS, ELEM_LIST_SET, ELEM_LIST_TABLE, LIST_ELEM,
                                           NETLINK_NETFILTER, NFNL_SUBSYS_NFTABLES, NFT_OBJECT_COUNTER, NLM_F_REQUEST,
                                           NLMSG_ERROR, OBJ_DATA, OBJ_NAME, OBJ_TABLE, OBJ_TYPE, _attr, error_code,
                                           message, messages)

NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM, NFT_MSG_GETGEN, NFT_MSG_NEWOBJ, NFT_MSG_DELOBJ = 12, 14, 16, 18, 20
NFT_GOTO = -4
# Attribute numbers (nf_tables.h) beyond those nftobj.py reads.
ELEM_OBJREF = 9
DATA_VERDICT, VERDICT_CODE, VERDICT_CHAIN = 2, 1, 2
NLM_F_ACK, NLM_F_CREATE = 0x4, 0x400
NLA_F_NESTED = 0x8000
NETLINK_CAP_ACK, SOL_NETLINK = 10, 270
# An attribute's length is 16 bits: one message carries at most this much of elements.
_MESSAGE_ELEMENTS = 60_000
SO_SNDBUFFORCE = 32
REPLY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Goto:
    """A verdict map's data: `goto <chain>`."""

    chain: str


@dataclass(frozen=True)
class Ref:
    """An object map's data: the named object (a counter)."""

    name: str


@dataclass(frozen=True)
class Element:
    """One element: its key (and data, for a map) as nft text and as the kernel holds it."""

    key_text: str
    key: bytes
    data_text: str | None = None
    data: bytes | Goto | Ref | None = None


@dataclass(frozen=True)
class Elements:
    """`add` or `delete` of elements of one set of the table."""

    add: bool
    table: str
    set_name: str
    items: Sequence[Element]

    def text(self) -> str:
        if self.add:
            body = ", ".join(f"{e.key_text} : {e.data_text}" if e.data_text else e.key_text for e in self.items)
        else:
            body = ", ".join(e.key_text for e in self.items)
        return f"{'add' if self.add else 'delete'} element inet {self.table} {self.set_name} {{ {body} }}"


@dataclass(frozen=True)
class Counter:
    """`add` or `delete` of a named counter of the table."""

    add: bool
    table: str
    name: str

    def text(self) -> str:
        return f"{'add' if self.add else 'delete'} counter inet {self.table} {self.name}"


Change = Elements | Counter


def _nested(kind: int, payload: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, payload)


def _string(kind: int, text: str) -> bytes:
    return _attr(kind, text.encode() + b"\0")


def _element(e: Element, add: bool) -> bytes:
    body = _nested(ELEM_KEY, _attr(DATA_VALUE, e.key))
    if add and isinstance(e.data, bytes):
        body += _nested(ELEM_DATA, _attr(DATA_VALUE, e.data))
    elif add and isinstance(e.data, Goto):
        verdict = _attr(VERDICT_CODE, struct.pack(">i", NFT_GOTO)) + _string(VERDICT_CHAIN, e.data.chain)
        body += _nested(ELEM_DATA, _nested(DATA_VERDICT, verdict))
    elif add and isinstance(e.data, Ref):
        body += _string(ELEM_OBJREF, e.data.name)
    return _nested(LIST_ELEM, body)


def _counter(c: Counter, seq: int) -> bytes:
    attrs = _string(OBJ_TABLE, c.table) + _string(OBJ_NAME, c.name) + _attr(OBJ_TYPE, struct.pack(">I", NFT_OBJECT_COUNTER))
    if not c.add:
        return message(NFT_MSG_DELOBJ, NLM_F_REQUEST, seq, attrs)
    zero = _attr(COUNTER_BYTES, bytes(8)) + _attr(COUNTER_PACKETS, bytes(8))
    return message(NFT_MSG_NEWOBJ, NLM_F_REQUEST | NLM_F_CREATE, seq, attrs + _nested(OBJ_DATA, zero))


def _batch_mark(kind: int, seq: int) -> bytes:
    """NFNL_MSG_BATCH_BEGIN or _END: a message of nfnetlink itself, naming the nf_tables subsystem."""
    return struct.pack("=IHHII", 20, kind, NLM_F_REQUEST, seq, 0) + struct.pack("!BBH", socket.AF_UNSPEC, 0,
                                                                             NFNL_SUBSYS_NFTABLES)


def batch(changes: Iterable[Change], seq: int = 1) -> tuple[bytes, int]:
    """The nfnetlink batch of `changes`, in order, and the next free sequence number."""
    out = [_batch_mark(NFNL_MSG_BATCH_BEGIN, seq)]
    seq += 1
    for change in _merged(changes):
        if isinstance(change, Counter):
            out.append(_counter(change, seq))
            seq += 1
            continue
        kind = NFT_MSG_NEWSETELEM if change.add else NFT_MSG_DELSETELEM
        flags = NLM_F_REQUEST | (NLM_F_CREATE if change.add else 0)  # no ack: errors come anyway
        named = _string(ELEM_LIST_TABLE, change.table) + _string(ELEM_LIST_SET, change.set_name)
        for chunk in _chunks(_element(e, change.add) for e in change.items):
            out.append(message(kind, flags, seq, named + _nested(ELEM_LIST_ELEMENTS, chunk)))
            seq += 1
    out.append(_batch_mark(NFNL_MSG_BATCH_END, seq))
    return b"".join(out), seq + 1


def _chunks(elements: Iterable[bytes]) -> Iterator[bytes]:
    """Encoded elements joined into runs of at most _MESSAGE_ELEMENTS bytes."""
    chunk: list[bytes] = []
    size = 0
    for raw in elements:
        if chunk and size + len(raw) > _MESSAGE_ELEMENTS:
            yield b"".join(chunk)
            chunk, size = [], 0
        chunk.append(raw)
        size += len(raw)
    if chunk:
        yield b"".join(chunk)


def _merged(changes: Iterable[Change]) -> Iterator[Change]:
    """Adjacent changes of the same set and verb as one (a Write of 10,000
    Services brings one element per Service and set, in runs)."""
    def same(c: Change) -> object:
        return (c.add, c.table, c.set_name) if isinstance(c, Elements) else c

    for _, run in groupby(changes, key=same):
        first, *rest = run
        if isinstance(first, Elements) and rest:
            yield Elements(first.add, first.table, first.set_name,
                           [e for c in (first, *rest) if isinstance(c, Elements) for e in c.items])
        else:
            yield first
            yield from rest


def commit(changes: Sequence[Change]) -> None:
    """Send `changes` as one kernel transaction in the caller's namespace;
    OSError (with the kernel's errno) when the kernel refused it, and then
    none of it took effect."""
    data, barrier = batch(changes)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as s:
        # One batch is one datagram (the kernel's transaction): room for all of it, as nft makes.
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, len(data) + 4096)
        except PermissionError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, len(data) + 4096)
        s.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # an error quotes only the header, not 60 KB of elements
        s.settimeout(REPLY_TIMEOUT)  # the kernel answers at once; never hang the target's worker on it
        s.bind((0, 0))
        s.send(data)
        # The kernel answers in order: an error for each refused message (and
        # for a failed commit), then the barrier's (NFT_MSG_GETGEN) reply and
        # ack. Once the barrier's ack is in, every answer of the batch is too.
        s.send(message(NFT_MSG_GETGEN, NLM_F_REQUEST | NLM_F_ACK, barrier, b"", family=socket.AF_UNSPEC))
        first_error = 0
        while True:
            reply = s.recv(1 << 20)
            for mtype, rseq, start, _ in messages(reply):
                if mtype != NLMSG_ERROR:
                    continue
                code = error_code(reply, start)
                if rseq == barrier:
                    if first_error:
                        raise OSError(first_error, f"nf_tables batch: {os.strerror(first_error)}")
                    if code:
                        raise OSError(code, f"nf_tables generation read: {os.strerror(code)}")
                    return
                first_error = first_error or code
