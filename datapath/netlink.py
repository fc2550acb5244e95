"""rtnetlink requests in batches: the few messages an ADD or DEL sends.

An ADD used to cost about ten pyroute2 calls per interface, each building its
message through pyroute2's request filters, running an asyncio loop for one
round trip and decoding the whole reply; the profile put two thirds of the
agent's ADD time there, not in the kernel. Here the messages are packed with
`struct` from the kernel's uapi layouts (linux/netlink.h, rtnetlink.h,
if_link.h, veth.h, if_addr.h) and all those for one namespace go in one
datagram: the kernel runs the messages of a datagram in order and acks each,
so a namespace costs one round trip per dependent step.

Used through agent.links (the agent's netlink facade; pyroute2 stays there
for reads, CHECK and the rare paths); the IPU target packs its routes with
the same layouts (datapath.target.kernel.routes).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
from dataclasses import dataclass, field

HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
_NLA = struct.Struct("=HH")  # nlattr: len, type
U32 = struct.Struct("=I")
I32 = struct.Struct("=i")

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # flags of an NLMSG_ERROR reply
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE, RTM_DELROUTE = 16, 17, 18, 20, 24, 25
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_LINKINFO = 1, 3, 4, 5, 18
IFLA_GROUP, IFLA_NET_NS_FD, IFLA_EXT_MASK = 27, 28, 29
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_MACVLAN_MODE, MACVLAN_MODE_BRIDGE = 1, 4
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFA_F_NODAD = 0x02
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_UNSPEC, RT_TABLE_MAIN, RTPROT_STATIC, RTN_UNICAST, RTN_BLACKHOLE = 0, 254, 4, 1, 6
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255
RTN_UNSPEC = 0
RTNH_F_ONLINK = 0x4
IFF_UP = 0x1
_GONE = frozenset({errno.ENODEV, errno.ENOENT})
ROUTE_GONE = frozenset({errno.ENOENT, errno.ESRCH})


class NetlinkBatchError(OSError):
    """A request of a batch failed: `errno` is the kernel's, `strerror` says which request."""


def attr(kind: int, payload: bytes) -> bytes:
    size = _NLA.size + len(payload)
    return _NLA.pack(size, kind) + payload + b"\0" * (-size % 4)


def _name(name: str) -> bytes:
    return name.encode() + b"\0"


def _mac(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _link_attrs(name: str, mac: str | None, mtu: int, group: int) -> bytes:
    attrs = attr(IFLA_IFNAME, _name(name)) + attr(IFLA_MTU, U32.pack(mtu)) + attr(IFLA_GROUP, U32.pack(group))
    return attrs + (attr(IFLA_ADDRESS, _mac(mac)) if mac is not None else b"")


def _route(dst: str, dst_len: int, table: int, scope: int, kind: int, flags: int = 0) -> bytes:
    return route_body(*_ip(dst), dst_len, table, scope, kind, flags)


def route_body(family: int, raw_dst: bytes, dst_len: int, table: int, scope: int, kind: int, flags: int = 0) -> bytes:
    """An rtmsg and its destination (`raw_dst`: the address in network byte
    order); a table past 255 goes in RTA_TABLE (the kernel prefers it)."""
    body = _RTMSG.pack(family, dst_len, 0, 0, table if table < 256 else RT_TABLE_UNSPEC, RTPROT_STATIC, scope,
                       kind, flags)
    if table >= 256:
        body += attr(RTA_TABLE, U32.pack(table))
    return body + (attr(RTA_DST, raw_dst) if dst_len else b"")


def _ip(address: str) -> tuple[int, bytes]:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return family, socket.inet_pton(family, address)


@dataclass
class LinkReply:
    """What a get_link request learnt, filled in by Batch.commit."""

    index: int = 0
    peer_index: int = 0  # IFLA_LINK: a veth's peer (in the peer's namespace)


@dataclass
class _Request:
    what: str
    message: bytes
    tolerate: frozenset[int] = frozenset()
    reply: LinkReply | None = None


@dataclass
class Batch:
    """Requests for one namespace, sent together by commit()."""

    session: Session
    requests: list[_Request] = field(default_factory=list)

    def _add(self, what: str, kind: int, flags: int, body: bytes, tolerate: frozenset[int] = frozenset(),
             reply: LinkReply | None = None) -> None:
        header = HDR.pack(HDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, 0, 0)
        self.requests.append(_Request(what, header + body, tolerate, reply))

    def new_veth(self, name: str, peer: str, peer_netns_fd: int, mtu: int, *, mac: str | None = None,
                 peer_mac: str | None = None, group: int = 0, peer_group: int = 0) -> None:
        """A veth `name` here, up, whose peer is born in another namespace,
        down: veth_newlink configures the peer before the pair is joined, and
        a veth without its peer refuses to come up (ENOTCONN); set_up it there."""
        peer_attrs = _link_attrs(peer, peer_mac, mtu, peer_group) + attr(IFLA_NET_NS_FD, U32.pack(peer_netns_fd))
        peer_info = _IFINFO.pack(0, 0, 0, 0, 0) + peer_attrs
        linkinfo = attr(IFLA_INFO_KIND, b"veth\0") + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_info))
        body = _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + _link_attrs(name, mac, mtu, group)
        self._add(f"create veth {name}", RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body + attr(IFLA_LINKINFO, linkinfo))

    def set_up(self, index: int) -> None:
        body = _IFINFO.pack(0, 0, index, IFF_UP, IFF_UP)
        self._add(f"set link {index} up", RTM_NEWLINK, 0, body)

    def new_macvlan(self, name: str, parent_index: int, mac: str, mtu: int, netns_fd: int, group: int = 0) -> None:
        """A macvlan (bridge mode) on the link `parent_index` here, born up in another namespace."""
        data = attr(IFLA_MACVLAN_MODE, U32.pack(MACVLAN_MODE_BRIDGE))
        linkinfo = attr(IFLA_INFO_KIND, b"macvlan\0") + attr(IFLA_INFO_DATA, data)
        body = _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + _link_attrs(name, mac, mtu, group)
        body += attr(IFLA_LINK, U32.pack(parent_index)) + attr(IFLA_NET_NS_FD, U32.pack(netns_fd))
        self._add(f"create macvlan {name}", RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body + attr(IFLA_LINKINFO, linkinfo))

    def get_link(self, name: str) -> LinkReply:
        """The link's index (and a veth's peer index) once committed; after a
        create in the same batch, since the kernel runs them in order."""
        reply = LinkReply()
        body = _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, _name(name))
        self._add(f"look up {name}", RTM_GETLINK, 0, body + attr(IFLA_EXT_MASK, U32.pack(RTEXT_FILTER_SKIP_STATS)),
                  reply=reply)
        return reply

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        """An address (present already is fine). No duplicate address detection
        for IPv6: the controller's IPAM guarantees uniqueness, and DAD would
        delay the address by about a second."""
        family, raw = _ip(address)
        flags = IFA_F_NODAD if family == socket.AF_INET6 else 0
        body = _IFADDR.pack(family, prefixlen, flags, RT_SCOPE_UNIVERSE, index)
        body += attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
        self._add(f"add address {address}/{prefixlen}", RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body,
                  frozenset({errno.EEXIST}))

    def add_route(self, index: int, dst: str, dst_len: int, gateway: str | None = None, onlink: bool = False,
                  replace: bool = False) -> None:
        """A main-table route through a link: via `gateway`, or on-link
        (scope link) without one. `replace` takes over an existing route."""
        scope = RT_SCOPE_UNIVERSE if gateway is not None else RT_SCOPE_LINK
        flags = RTNH_F_ONLINK if onlink and gateway is not None else 0
        body = _route(dst, dst_len, RT_TABLE_MAIN, scope, RTN_UNICAST, flags) + attr(RTA_OIF, U32.pack(index))
        if gateway is not None:
            body += attr(RTA_GATEWAY, _ip(gateway)[1])
        mode = NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL)
        self._add(f"add route {dst}/{dst_len}", RTM_NEWROUTE, mode, body, frozenset({errno.EEXIST}))

    def delete_link(self, name: str) -> None:
        """Delete a link by name; missing is fine."""
        body = _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, _name(name))
        self._add(f"delete {name}", RTM_DELLINK, 0, body, _GONE)

    def delete_group(self, group: int) -> None:
        """Delete every link of a (non-default) group, in one kernel batch; none is fine."""
        if group == 0:
            raise ValueError("refusing to delete link group 0, the default group")
        body = _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_GROUP, U32.pack(group))
        self._add(f"delete link group {group}", RTM_DELLINK, 0, body, _GONE)

    def commit(self) -> None:
        """Send every request in one datagram and read each one's ack; raise
        NetlinkBatchError for the first that failed with an error not tolerated."""
        if self.requests:
            self.session.exchange(self.requests)
        self.requests = []


def prepare(sock: socket.socket, timeout: float) -> None:
    """A NETLINK_ROUTE socket made ready for batches: short acks, with the
    kernel's reason on error, bound, and no wait on a reply past `timeout`."""
    for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
        sock.setsockopt(SOL_NETLINK, option, 1)
    sock.bind((0, 0))
    sock.settimeout(timeout)


class Session:
    """A NETLINK_ROUTE socket bound to one namespace; one batch at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        self._seq = 0
        # An ack the kernel could not queue (ENOBUFS) fails the batch rather
        # than hanging it; a late one is skipped by its sequence number.
        prepare(sock, timeout=30)

    def batch(self) -> Batch:
        return Batch(self)

    def close(self) -> None:
        self.sock.close()

    def exchange(self, requests: list[_Request]) -> None:
        with self._lock:
            pending: dict[int, _Request] = {}
            out = bytearray()
            for request in requests:
                self._seq = self._seq % 0x7FFFFFFF + 1
                pending[self._seq] = request
                message = bytearray(request.message)
                U32.pack_into(message, 8, self._seq)
                out += message
            self.sock.send(out)
            failures = self._collect(pending)
        if failures:
            code, what, reason = failures[0]
            raise NetlinkBatchError(code, f"{what}: {os.strerror(code)}{f' ({reason})' if reason else ''}")

    def _collect(self, pending: dict[int, _Request]) -> list[tuple[int, str, str]]:
        failures: list[tuple[int, str, str]] = []
        while pending:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + HDR.size <= len(data):
                length, kind, flags, seq, _ = HDR.unpack_from(data, offset)
                request = pending.get(seq)
                if request is not None and kind == NLMSG_ERROR:
                    code = -I32.unpack_from(data, offset + HDR.size)[0]
                    del pending[seq]
                    if code and code not in request.tolerate:
                        failures.append((code, request.what, ext_ack(data[offset:offset + length], flags)))
                elif request is not None and request.reply is not None and kind == RTM_NEWLINK:
                    _read_link(data, offset + HDR.size, offset + length, request.reply)
                offset += (length + 3) & ~3 or len(data)
        return failures


def _read_link(data: bytes, start: int, end: int, reply: LinkReply) -> None:
    reply.index = _IFINFO.unpack_from(data, start)[2]
    offset = start + _IFINFO.size
    while offset + _NLA.size <= end:
        size, kind = _NLA.unpack_from(data, offset)
        if size < _NLA.size:
            break
        if kind == IFLA_LINK:
            reply.peer_index = U32.unpack_from(data, offset + _NLA.size)[0]
        offset += (size + 3) & ~3


def ext_ack(message: bytes, flags: int) -> str:
    """The kernel's extended-ack message (NLMSGERR_ATTR_MSG), if it sent one."""
    if not flags & NLM_F_ACK_TLVS:
        return ""
    offset = HDR.size + 4  # past the error code: the request's header, its payload unless capped
    offset += HDR.size if flags & NLM_F_CAPPED else HDR.unpack_from(message, offset)[0]
    while offset + _NLA.size <= len(message):
        size, kind = _NLA.unpack_from(message, offset)
        if size < _NLA.size:
            break
        if kind == NLMSGERR_ATTR_MSG:
            return message[offset + _NLA.size:offset + size].rstrip(b"\0").decode(errors="replace")
        offset += (size + 3) & ~3
    return ""
