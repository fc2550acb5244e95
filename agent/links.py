"""The agent's one facade to netlink: netns, link, address and route helpers over pyroute2.

The rest of the agent imports pyroute2's handle and error types from here
(`IPRoute`, `NetlinkError`), never pyroute2 itself.

A netlink socket for another namespace is made by a short-lived thread inside
it (datapath.netns, the one setns of the project); the socket stays bound to
that namespace. This avoids the fork per namespace that pyroute2's own netns
support costs (5x slower here).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# Re-exported (`X as X`) for the agent's modules, which import them from here.
from pyroute2 import IPRoute as IPRoute
from pyroute2.netlink.exceptions import NetlinkError as NetlinkError

from agent.plan import IPInterface, Route
from datapath.netns import NetnsGone as NetnsGone
from datapath.netns import socket_in
from datapath.netns import netns_path as netns_path
from datapath.netns import open_netns as open_netns

_IFA_F_NODAD = 0x02
_RTNH_F_ONLINK = 0x04


@contextmanager
def rtnl(netns: str | None) -> Iterator[IPRoute]:
    """An IPRoute in `netns` (None: the agent's own namespace)."""
    ipr = IPRoute() if netns is None else IPRoute(fileno=socket_in(netns, socket.AF_NETLINK, socket.SOCK_DGRAM).detach())
    try:
        yield ipr
    finally:
        ipr.close()


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


def create_veth(
    ipr: IPRoute, name: str, mac: str, mtu: int, peer: str, peer_netns_fd: int, group: int = 0
) -> int:
    """A veth `name` here (in link group `group`) whose peer `peer` is created
    directly in another namespace."""
    ipr.link(
        "add",
        ifname=name,
        kind="veth",
        address=mac,
        mtu=mtu,
        group=group,
        peer={"ifname": peer, "mtu": mtu, "net_ns_fd": peer_netns_fd},
    )
    index = index_of(ipr, name)
    assert index is not None
    return index


def create_macvlan(
    uplink_ipr: IPRoute, uplink: str, name: str, mac: str, mtu: int, target_netns_fd: int, group: int = 0
) -> None:
    """A macvlan (bridge mode) on `uplink`, born directly in the target namespace."""
    parent = index_of(uplink_ipr, uplink)
    if parent is None:
        raise LookupError(f"uplink {uplink} does not exist")
    uplink_ipr.link(
        "add",
        ifname=name,
        kind="macvlan",
        link=parent,
        macvlan_mode="bridge",
        address=mac,
        mtu=mtu,
        group=group,
        net_ns_fd=target_netns_fd,
    )


def set_up(ipr: IPRoute, name: str, index: int | None = None) -> int:
    """Bring a link up; returns its index."""
    if index is None:
        index = index_of(ipr, name)
    if index is None:
        raise LookupError(f"link {name} does not exist")
    ipr.link("set", index=index, state="up")
    return index


def add_addresses(ipr: IPRoute, index: int, ips: Iterable[IPInterface]) -> None:
    for ip in ips:
        try:
            ipr.addr(
                "add",
                index=index,
                address=str(ip.ip),
                prefixlen=ip.network.prefixlen,
                # No duplicate address detection: the controller's IPAM
                # guarantees uniqueness, and DAD would delay IPv6 by ~1s.
                flags=_IFA_F_NODAD if ip.version == 6 else 0,
            )
        except NetlinkError as err:
            if err.code != errno.EEXIST:
                raise


def add_route(ipr: IPRoute, index: int, route: Route, onlink: bool = False, replace: bool = False) -> None:
    kwargs: dict[str, Any] = {"dst": str(route.dst), "oif": index}
    if route.dst.version == 6:
        kwargs["family"] = socket.AF_INET6
    if route.gateway is not None:
        kwargs["gateway"] = str(route.gateway)
        if onlink:
            kwargs["flags"] = _RTNH_F_ONLINK
    else:
        kwargs["scope"] = 253  # link
    try:
        ipr.route("replace" if replace else "add", **kwargs)
    except NetlinkError as err:
        if err.code != errno.EEXIST:
            raise


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
