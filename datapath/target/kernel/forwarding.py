"""Forwarding: the port, route and neighbor tables, realized by routing.

Forwarding is routed, not bridged: the bridge family has no conntrack on the
kernels we target, and services and policy need conntrack. A port is a link
whose packets enter its network's policy-routing table (proxy ARP answers the
pods' on-link lookups); a route goes to a local port, into the network's VXLAN
device toward a remote VTEP (static neighbour and FDB entry), or to a
blackhole; a neighbor entry is a permanent ARP entry on the port.
"""

from __future__ import annotations

from finsy.proto import rpc_code

from datapath.entries import Entry, P4Error, ip_text, mac_text
from datapath.target.kernel.context import (NUD_PERMANENT, TABLE_BASE, KernelContext, KernelRealizer, dst_of, exact,
                                            network_of, param, realizes, tunnel_mac)
from datapath.target.kernel.networks import Network, Networks
from podnetwork import faults


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
        n = networks.acquire(net)
        for knob, value in (("proxy_arp", "1"), ("rp_filter", "0"), ("forwarding", "1")):
            self.ctx.write_sysctl(f"net/ipv4/conf/{link}/{knob}", value)
        # Answer ARP at once: the default 0.8 s proxy delay stalls every first packet.
        self.ctx.write_sysctl(f"net/ipv4/neigh/{link}/proxy_delay", "0")
        self.ctx.ipr.link("set", index=index, state="up")
        if old is not None:
            self._teardown(old)
        networks.join(link, n)

    def _teardown(self, old: Entry) -> None:
        networks, net = self.ctx.part(Networks), param(old)
        networks.leave(str(exact(old, "port")), net)
        networks.release(net)


class Tunnels:
    """FDB entries toward remote VTEPs, per network, counted by the routes using them."""

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
    def apply(self, old: Entry | None, new: Entry | None) -> None:
        if new is not None:
            self._install(new)
        if old is not None:
            self._release(old, removed=new is None)

    def _install(self, new: Entry) -> None:
        ctx, net, dst = self.ctx, network_of(new), dst_of(new)
        call = new.actions[0]
        if call.name == "to_tunnel" and dst.prefix_len != 32:
            raise P4Error(rpc_code.UNIMPLEMENTED, "route: to_tunnel needs a /32 destination on this target")
        # Resolve the port first: a missing link must fail before any reference is taken.
        oif = ctx.index(str(call.params[0])) if call.name == "to_port" else 0
        n = ctx.part(Networks).acquire(net)
        cidr, table = f"{ip_text(dst.value)}/{dst.prefix_len}", TABLE_BASE + net
        if call.name == "to_port":
            ctx.ipr.route("replace", dst=cidr, table=table, oif=oif)
        elif call.name == "drop":
            ctx.ipr.route("replace", dst=cidr, table=table, type="blackhole")
        else:
            vtep = int(call.params[0])
            ctx.part(Tunnels).acquire(n, vtep)
            vx = ctx.index(n.vxlan)
            ctx.ipr.route("replace", dst=cidr, table=table, oif=vx)
            ctx.ipr.neigh("replace", dst=ip_text(dst.value), lladdr=tunnel_mac(vtep), ifindex=vx,
                          state=NUD_PERMANENT)
            if faults.on("cross-node-drop"):
                ctx.ipr.route("replace", dst=cidr, table=table, type="blackhole")

    def _release(self, old: Entry, removed: bool) -> None:
        ctx, net, dst = self.ctx, network_of(old), dst_of(old)
        networks = ctx.part(Networks)
        n = networks[net]
        if removed and dst.prefix_len == 0:
            networks.default_route(n)  # the network's own default route (into its tunnel) comes back
        elif removed:
            ctx.quiet(ctx.ipr.route, "del", dst=f"{ip_text(dst.value)}/{dst.prefix_len}", table=TABLE_BASE + net)
        call = old.actions[0]
        if call.name == "to_tunnel":
            if removed:
                ctx.quiet(ctx.ipr.neigh, "del", dst=ip_text(dst.value), ifindex=ctx.index(n.vxlan))
            ctx.part(Tunnels).release(n, int(call.params[0]))
        networks.release(net)


@realizes("neighbor")
class NeighborRealizer(KernelRealizer):
    def apply(self, old: Entry | None, new: Entry | None) -> None:
        ipr = self.ctx.ipr
        if new is not None:
            ipr.neigh("replace", dst=ip_text(int(exact(new, "ip"))), lladdr=mac_text(param(new)),
                      ifindex=self.ctx.index(str(exact(new, "port"))), state=NUD_PERMANENT)
        elif old is not None:
            found = ipr.link_lookup(ifname=str(exact(old, "port")))
            if found:
                self.ctx.quiet(ipr.neigh, "del", dst=ip_text(int(exact(old, "ip"))), ifindex=found[0])
