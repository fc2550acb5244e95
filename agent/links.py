"""The agent's one facade to netlink: netns, link, address and route helpers.

ADD and DEL write through sessions (datapath.netlink: each namespace's
requests in one datagram); reads, CHECK and GC's sweep use pyroute2. The rest
of the agent imports the handle and error types from here (`IPRoute`,
`NetlinkError`, `Session`, `NetlinkBatchError`), never pyroute2 itself.

A netlink socket for another namespace is made by a short-lived thread inside
it (datapath.netns, the one setns of the project); the socket stays bound to
that namespace. This avoids the fork per namespace that pyroute2's own netns
support costs (5x slower here).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# Re-exported (`X as X`) for the agent's modules, which import them from here.
from pyroute2 import IPRoute as IPRoute
from pyroute2.netlink.exceptions import NetlinkError as NetlinkError

from datapath.netlink import Batch as Batch
from datapath.netlink import LinkReply as LinkReply
from datapath.netlink import NetlinkBatchError as NetlinkBatchError
from datapath.netlink import Session as Session
from agent.plan import IPInterface, Route
from agent.record import OwnedLink
from datapath.netns import NetnsGone as NetnsGone
from datapath.netns import enter, socket_in
from datapath.netns import netns_path as netns_path
from datapath.netns import netns_mounted as netns_mounted
from datapath.netns import open_netns as open_netns


def _netlink_socket(netns: str | None) -> socket.socket:
    if netns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    return socket_in(netns, socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)


@contextmanager
def rtnl(netns: str | None) -> Iterator[IPRoute]:
    """An IPRoute in `netns` (None: the agent's own namespace)."""
    ipr = IPRoute() if netns is None else IPRoute(fileno=_netlink_socket(netns).detach())
    try:
        yield ipr
    finally:
        ipr.close()


@dataclass(frozen=True)
class PodNetns:
    """A pod's namespace as an ADD writes to it: its session, and the
    descriptor that links made from another namespace are born into."""

    session: Session
    fd: int


def _netlink_socket_here(netns: str) -> socket.socket:
    """A netlink socket in `netns`, made by this thread entering it and coming
    straight back: the thread of socket_in costs a start and a hand-over of
    the interpreter lock, the largest part of a DEL's own time in the agent."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        enter(netns)
        try:
            return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        finally:
            enter(home)  # never returns in the pod: a delegate exec'd later would run there
    finally:
        os.close(home)


class Sessions:
    """Netlink sessions: one kept open for each of the node's own namespaces
    (the agent's, the IPU's, the host's: they live as long as the agent), a
    fresh one for any other (a pod's), closed after use. A kept socket stays
    bound to the namespace it was made in: one deleted and made again under
    the same name is not followed until the agent restarts."""

    def __init__(self, keep: Iterable[str | None]) -> None:
        self._keep = {None, *keep}
        self._open: dict[str | None, Session] = {}
        self._lock = threading.Lock()

    @contextmanager
    def of(self, netns: str | None) -> Iterator[Session]:
        if netns not in self._keep:
            assert netns is not None  # the agent's own is always kept
            session = Session(_netlink_socket_here(netns))
            try:
                yield session
            finally:
                session.close()
            return
        with self._lock:
            if netns not in self._open:
                self._open[netns] = Session(_netlink_socket(netns))
            session = self._open[netns]
        yield session

    def close(self) -> None:
        with self._lock:
            for session in self._open.values():
                session.close()
            self._open.clear()


def index_of(ipr: IPRoute, name: str) -> int | None:
    # One RTM_GETLINK by name (link_lookup dumps every link of the namespace).
    try:
        (link,) = ipr.link("get", ifname=name)
    except NetlinkError as err:
        if err.code in (errno.ENODEV, errno.ENOENT):
            return None
        raise
    index: int = link["index"]
    return index


@dataclass(frozen=True)
class LinkState:
    name: str
    kind: str
    mac: str
    mtu: int
    up: bool
    addresses: frozenset[str]  # CIDR strings


def link_state(ipr: IPRoute, name: str) -> LinkState | None:
    index = index_of(ipr, name)
    if index is None:
        return None
    (link,) = ipr.link("get", index=index)
    info = link.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else ""
    addresses = frozenset(
        f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.addr("dump", index=index)
    )
    return LinkState(
        name=name,
        kind=kind or "",
        mac=link.get_attr("IFLA_ADDRESS") or "",
        mtu=link.get_attr("IFLA_MTU") or 0,
        up=bool(link["flags"] & 1),
        addresses=addresses,
    )


def veth_names(ipr: IPRoute) -> list[str]:
    """Names of the namespace's veth links."""
    out = []
    for link in ipr.link("dump"):
        info = link.get_attr("IFLA_LINKINFO")
        if info is not None and info.get_attr("IFLA_INFO_KIND") == "veth":
            out.append(str(link.get_attr("IFLA_IFNAME")))
    return out


def add_addresses(batch: Batch, index: int, ips: Iterable[IPInterface]) -> None:
    for ip in ips:
        batch.add_address(index, str(ip.ip), ip.network.prefixlen)


def add_route(batch: Batch, index: int, route: Route, onlink: bool = False, replace: bool = False) -> None:
    gateway = str(route.gateway) if route.gateway is not None else None
    batch.add_route(index, str(route.dst.network_address), route.dst.prefixlen, gateway, onlink, replace)


def routes_via(ipr: IPRoute, index: int) -> set[str]:
    """Destinations of the main table's routes through a link (for CHECK)."""
    out = set()
    for family in (socket.AF_INET, socket.AF_INET6):
        for r in ipr.route("dump", family=family, oif=index, table=254):
            dst = r.get_attr("RTA_DST")
            out.add(str(ipaddress.ip_network(f"{dst or ('::' if family == socket.AF_INET6 else '0.0.0.0')}/{r['dst_len']}")))
    return out


def delete_link(ipr: IPRoute, name: str, owner_mac: str | None = None) -> bool:
    """Delete a link by name; missing is fine (DEL is idempotent). True if deleted.

    With `owner_mac`, only a link carrying that MAC is ours to delete: a pod's
    namespace may hold a same-named link that someone else made."""
    index = index_of(ipr, name)
    if index is None:
        return False
    if owner_mac is not None:
        (link,) = ipr.link("get", index=index)
        if str(link.get_attr("IFLA_ADDRESS") or "").lower() != owner_mac.lower():
            return False
    try:
        ipr.link("del", index=index)
    except NetlinkError as err:
        if err.code not in (errno.ENODEV, errno.ENOENT):
            raise
        return False
    return True


def delete_group(ipr: IPRoute, group: int) -> None:
    """Delete every link of a (non-default) group in one batch; none is fine."""
    if group == 0:
        raise ValueError("refusing to delete link group 0, the default group")
    try:
        ipr.link("del", group=group)
    except NetlinkError as err:
        if err.code not in (errno.ENODEV, errno.ENOENT):
            raise


def kernel_has_link_kind(kind: str, prefix: str) -> bool:
    """Probe whether this kernel can create links of `kind`: the rtnl answer
    to creating one with a bogus parent is EOPNOTSUPP when the kind is unknown
    (and ENODEV, nothing created, when it is known)."""
    name = f"{prefix}probe"[:15]
    with rtnl(None) as ipr:
        try:
            ipr.link("add", ifname=name, kind=kind, link=0x7FFFFFF0)
        except NetlinkError as err:
            return bool(err.code != errno.EOPNOTSUPP)
        delete_link(ipr, name)
        return True


def delete_owned(sessions: Sessions, netns: str | None, group: int, owned: Iterable[OwnedLink]) -> None:
    """One namespace's links of an attachment, in one batch: the pod side as
    its link group (`group`, 0 elsewhere; one kernel batch, veth peers go with
    it), the others by name, a missing link being fine. A link that marks its
    owner by MAC outside a group (records of earlier versions) is checked first."""
    with sessions.of(netns) as session:
        batch = session.batch()
        if group:
            batch.delete_group(group)
        for link in owned:
            if link.mac is None:
                batch.delete_link(link.name)
        batch.commit()
    checked = [link for link in owned if link.mac is not None and not group]
    if checked:
        with rtnl(netns) as ipr:
            for link in checked:
                delete_link(ipr, link.name, link.mac)
