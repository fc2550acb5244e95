"""The IPU target's routes: queued while a Write's route updates are applied,
sent before anything that depends on them and at the batch's end, many
requests to a datagram, acked only on error.

With one round trip per route a Write realized about 5,000 routes a second:
Python spent more on each request's ack than the kernel on the route. Here
only a chunk's last request asks for an ack. The kernel runs a datagram's
requests in order and answers each in turn, so every error of a chunk is
queued on the socket before that ack. An error is the refusal of the update
that queued the request (its `owner`), reported for that update alone
(datapath.target.realizer.Refused).
"""

from __future__ import annotations

import os
import socket
import struct

from datapath import netlink as nl

_HDR = nl.HDR  # nlmsghdr: len, type, flags, seq, pid
_FLAGS = struct.Struct("=H")  # nlmsghdr.nlmsg_flags, at offset 6
_CHUNK = 1 << 16  # bytes of requests per datagram, well under the socket's send buffer
_SEQ_MAX = 0x7FFFFFFF
_RCVBUF = 1 << 22  # room for an error reply to every request of a chunk
SO_RCVBUFFORCE = 33  # socket(7); not in Python's socket module


class RouteQueue:
    """Route requests of one namespace (the caller's when made), in order."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _RCVBUF)
        except PermissionError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)  # capped by net.core.rmem_max
        # A reply the kernel could not queue fails the batch (OSError) rather than hanging it.
        nl.prepare(self.sock, timeout=60)
        self._seq = 0
        self._base = 1  # the sequence number of the first queued request
        self._requests: list[bytes] = []
        self._owners: list[object] = []
        self.refused: list[tuple[object, str]] = []  # (owner, reason), one per refused request, in order

    def replace(self, owner: object, family: int, table: int, dst: bytes, dst_len: int, oif: int | None) -> None:
        """The route to `dst` (network byte order) in `table`, out of link `oif`;
        a blackhole when None. It replaces one of the same key."""
        kind = nl.RTN_UNICAST if oif is not None else nl.RTN_BLACKHOLE
        body = nl.route_body(family, dst, dst_len, table, nl.RT_SCOPE_UNIVERSE, kind)
        if oif is not None:
            body += nl.attr(nl.RTA_OIF, nl.U32.pack(oif))
        self._queue(owner, nl.RTM_NEWROUTE, nl.NLM_F_CREATE | nl.NLM_F_REPLACE, body)

    def delete(self, owner: object, family: int, table: int, dst: bytes, dst_len: int) -> None:
        """Delete the route to `dst` from `table`, of any type and scope (what
        `ip route del` sends); already gone is fine."""
        self._queue(owner, nl.RTM_DELROUTE, 0,
                    nl.route_body(family, dst, dst_len, table, nl.RT_SCOPE_NOWHERE, nl.RTN_UNSPEC))

    def _queue(self, owner: object, kind: int, flags: int, body: bytes) -> None:
        self._seq = self._seq % _SEQ_MAX + 1
        if not self._requests:
            self._base = self._seq
        self._requests.append(_HDR.pack(_HDR.size + len(body), kind, nl.NLM_F_REQUEST | flags, self._seq, 0) + body)
        self._owners.append(owner)

    def take_refused(self) -> list[tuple[object, str]]:
        """The refusals since the last call."""
        refused, self.refused = self.refused, []
        return refused

    def clear(self) -> None:
        """Drop what is queued and what was refused (the kernel is being reset)."""
        self._requests, self._owners, self.refused = [], [], []

    def flush(self) -> None:
        """Send everything queued; each refused request's owner and reason go
        to `refused`. OSError when the kernel's replies were lost (the
        socket's buffer overflowed, or no reply came): then which requests
        took effect is unknown."""
        requests, owners, base = self._requests, self._owners, self._base
        self._requests, self._owners = [], []
        start = 0
        while start < len(requests):
            end, size = start, 0
            while end < len(requests) and size < _CHUNK:
                size += len(requests[end])
                end += 1
            last = bytearray(requests[end - 1])
            _FLAGS.pack_into(last, 6, _FLAGS.unpack_from(last, 6)[0] | nl.NLM_F_ACK)
            self.sock.send(b"".join(requests[start:end - 1]) + last)
            self._collect(requests, owners, base, _HDR.unpack_from(last)[3])
            start = end

    def _collect(self, requests: list[bytes], owners: list[object], base: int, last_seq: int) -> None:
        while True:
            data = self.sock.recv(1 << 20)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, kind, flags, seq, _ = _HDR.unpack_from(data, offset)
                if kind == nl.NLMSG_ERROR:
                    index = (seq - base) % _SEQ_MAX
                    code = -nl.I32.unpack_from(data, offset + _HDR.size)[0]  # nlmsgerr.error
                    if code and index < len(requests):
                        self._refuse(requests[index], owners[index], code, data[offset:offset + length], flags)
                    if seq == last_seq:
                        return
                offset += (length + 3) & ~3 or len(data)

    def _refuse(self, request: bytes, owner: object, code: int, reply: bytes, flags: int) -> None:
        if _HDR.unpack_from(request)[1] == nl.RTM_DELROUTE and code in nl.ROUTE_GONE:
            return
        reason = nl.ext_ack(reply, flags)
        self.refused.append((owner, f"{os.strerror(code)}{f' ({reason})' if reason else ''}"))

    def close(self) -> None:
        self.sock.close()

