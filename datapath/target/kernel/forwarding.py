"""Forwarding: the port, route(6) and neighbor(6) tables, realized by routing.

Forwarding is routed, not bridged: the bridge family has no conntrack on the
kernels we target, and services and policy need conntrack. A port is a link
whose packets enter its network's policy-routing tables (proxy ARP answers
the pods' IPv4 on-link lookups, proxy NDP entries their IPv6 ones, see
ndproxy.py); a route goes to a local port, into the network's VXLAN device
toward a remote VTEP (static neighbour and FDB entry; IPv6 rides the IPv4
underlay too), or to a blackhole; a neighbor entry is a permanent ARP or NDP
entry on the port.
"""

from __future__ import annotations

import sys

from finsy.proto import rpc_code

from datapath.entries import ActionCall, Entry, Lpm, P4Error, ip_text, mac_text
from datapath.target.kernel.context import (NUD_PERMANENT, TABLE_BASE, V6, Family, KernelContext, KernelRealizer,
                                            dst_of, exact, family, network_of, param, realizes, tunnel_mac)
from datapath.target.kernel.guard import guard_port
from datapath.target.kernel.ndproxy import NdProxy
from datapath.target.kernel.nftelem import Element, Elements
from datapath.target.kernel.networks import Network, Networks
from datapath.target.kernel.segments import Segments
from podnetwork import faults

# Per-port knobs: forwarding, proxy ARP/NDP, no reverse-path filter, and no
# IPv4 redirects (a hairpin leaves by the port it came in; the pod must not
# be told to reach itself directly). accept_dad=0 before the link comes up:
# the port's link-local address must be usable at once to source the proxy
# NDP answers (a tentative address cannot).
_PORT_SYSCTLS = (
    ("ipv4/conf/{}/proxy_arp", "1"), ("ipv4/conf/{}/rp_filter", "0"), ("ipv4/conf/{}/forwarding", "1"),
    ("ipv4/conf/{}/send_redirects", "0"),
    # Answer at once: the default 0.8 s proxy delay stalls every first packet.
    ("ipv4/neigh/{}/proxy_delay", "0"), ("ipv6/neigh/{}/proxy_delay", "0"),
    ("ipv6/conf/{}/accept_dad", "0"), ("ipv6/conf/{}/forwarding", "1"), ("ipv6/conf/{}/proxy_ndp", "1"),
    ("ipv6/conf/{}/accept_ra", "0"),
)


@realizes("port")
class PortRealizer(KernelRealizer):
    def apply(self, old: Entry | None, new: Entry | None) -> None:
        networks = self.ctx.part(Networks)
        if new is None:
            if old is not None:
                self._teardown(old)
            return
        link, net = str(exact(new, "port")), param(new)
        index = self.ctx.index(link)
        if new.actions[0].name == "set_bridge":
            if old is not None:
                self._teardown(old)
            self.ctx.part(Segments).join(net, link)
            return
        n = networks.acquire(net)
        for path, value in _PORT_SYSCTLS:
            self.ctx.write_sysctl(f"net/{path.format(link)}", value)
        self.ctx.ipr.link("set", index=index, state="up")
        if old is not None:
            self._teardown(old)
        networks.join(link, n)
        guard_port(self.ctx, link, add=True)
        self.ctx.part(NdProxy).add_port(net, link)

    def _teardown(self, old: Entry) -> None:
        networks, net, link = self.ctx.part(Networks), param(old), str(exact(old, "port"))
        if old.actions[0].name == "set_bridge":
            self.ctx.part(Segments).leave(net, link)
            return
        self.ctx.part(NdProxy).remove_port(net, link)
        guard_port(self.ctx, link, add=False)
        networks.leave(link, net)
        networks.release(net)


class Tunnels:
    """FDB entries toward remote VTEPs, per network, counted by the routes (of both families) using them."""

    def __init__(self, ctx: KernelContext) -> None:
        self.ctx = ctx
        self.refs: dict[tuple[int, int], int] = {}

    def acquire(self, n: Network, vtep: int) -> None:
        key = (n.id, vtep)
        if key not in self.refs:
            self.ctx.ipr.fdb("append", ifindex=self.ctx.index(n.vxlan), lladdr=tunnel_mac(vtep), dst=ip_text(vtep),
                             state=NUD_PERMANENT)
        self.refs[key] = self.refs.get(key, 0) + 1

    def release(self, n: Network, vtep: int) -> None:
        key = (n.id, vtep)
        self.refs[key] -= 1
        if not self.refs[key]:
            del self.refs[key]
            self.ctx.quiet(self.ctx.ipr.fdb, "del", ifindex=self.ctx.index(n.vxlan), lladdr=tunnel_mac(vtep),
                           dst=ip_text(vtep))


@realizes("route")
class RouteRealizer(KernelRealizer):
    queues_routes = True

    @property
    def family(self) -> Family:
        return family(self.table)

    def apply(self, old: Entry | None, new: Entry | None) -> None:
        if new is not None:
            self._install(new)
        if old is not None:
            self._release(old, removed=new is None)
        self._hairpin(old, new)

    def _hairpin(self, old: Entry | None, new: Entry | None) -> None:
        """Keep (network, pod, pod) in the family's `hairpin` set for each local
        pod address (a host route to a port): what lets a pod reach itself
        through its own Service (ruleset.py, postrouting)."""
        was, now = _hairpin_element(old, self.family), _hairpin_element(new, self.family)
        if was == now:
            return
        q, t, name = self.ctx.pending.elements, self.ctx.table, f"hairpin{self.family.suffix}"
        if was:
            q.append(Elements(False, t, name, [was]))
        if now:
            q.append(Elements(True, t, name, [now]))

    def _install(self, new: Entry) -> None:
        ctx, f, net, dst = self.ctx, self.family, network_of(new), dst_of(new)
        call = new.actions[0]
        if call.name == "to_tunnel" and dst.prefix_len != f.width:
            raise P4Error(rpc_code.UNIMPLEMENTED, f"{self.table}: to_tunnel needs a host (/{f.width}) destination "
                                                  "on this target")
        # Resolve the port first: a missing link must fail before any reference is taken.
        oif = ctx.index(str(call.params[0])) if call.name == "to_port" else 0
        n = ctx.part(Networks).acquire(net)
        try:
            self._route(n, dst, call, oif)
        except BaseException:
            # The update fails and its entry is not stored, so it must hold no
            # reference (the kernel refuses, e.g., a route through a port that is down).
            ctx.part(Networks).release(net)
            raise
        if f is V6 and dst.prefix_len == f.width:
            ctx.part(NdProxy).hold(net, dst.value, _home(new))

    def _route(self, n: Network, dst: Lpm, call: ActionCall, oif: int) -> None:
        ctx, f, table = self.ctx, self.family, TABLE_BASE + n.id
        if call.name == "to_port":
            ctx.route(f, table, dst, oif)
        elif call.name == "drop":
            ctx.route(f, table, dst, None)
        else:
            vtep = int(call.params[0])
            vx = ctx.index(n.vxlan)
            ctx.route(f, table, dst, vx)
            ctx.ipr.neigh("replace", family=f.af, dst=f.text(dst.value), lladdr=tunnel_mac(vtep), ifindex=vx,
                          state=NUD_PERMANENT)
            if faults.on("cross-node-drop"):
                ctx.route(f, table, dst, None)
            ctx.part(Tunnels).acquire(n, vtep)  # last: nothing after it can fail and leave the count up

    def _release(self, old: Entry, removed: bool) -> None:
        ctx, f, net, dst = self.ctx, self.family, network_of(old), dst_of(old)
        networks = ctx.part(Networks)
        n = networks[net]
        if f is V6 and dst.prefix_len == f.width:
            ctx.part(NdProxy).release(net, dst.value, _home(old))
        if removed and dst.prefix_len == 0:
            networks.default_route(n)  # the network's own default route (into its tunnel) comes back
        elif removed:
            ctx.unroute(f, TABLE_BASE + net, dst)
        call = old.actions[0]
        if call.name == "to_tunnel":
            if removed:
                ctx.quiet(ctx.ipr.neigh, "del", family=f.af, dst=f.text(dst.value), ifindex=ctx.index(n.vxlan))
            ctx.part(Tunnels).release(n, int(call.params[0]))
        networks.release(net)


def _hairpin_element(e: Entry | None, f: Family) -> Element | None:
    """(network . pod . pod): a mark (host byte order) and the address twice."""
    if e is None or e.actions[0].name != "to_port" or dst_of(e).prefix_len != f.width:
        return None
    net, dst = network_of(e), dst_of(e).value
    address, raw = f.text(dst), f.raw(dst)
    return Element(f"{net} . {address} . {address}", net.to_bytes(4, sys.byteorder) + raw + raw)


def _home(e: Entry) -> str | None:
    call = e.actions[0]
    return str(call.params[0]) if call.name == "to_port" else None


@realizes("route6")
class Route6Realizer(RouteRealizer):
    pass


@realizes("neighbor")
class NeighborRealizer(KernelRealizer):
    def apply(self, old: Entry | None, new: Entry | None) -> None:
        ipr, f = self.ctx.ipr, family(self.table)
        if new is not None:
            ipr.neigh("replace", family=f.af, dst=f.text(int(exact(new, "ip"))), lladdr=mac_text(param(new)),
                      ifindex=self.ctx.index(str(exact(new, "port"))), state=NUD_PERMANENT)
        elif old is not None:
            found = ipr.link_lookup(ifname=str(exact(old, "port")))
            if found:
                self.ctx.quiet(ipr.neigh, "del", family=f.af, dst=f.text(int(exact(old, "ip"))), ifindex=found[0])


@realizes("neighbor6")
class Neighbor6Realizer(NeighborRealizer):
    pass
