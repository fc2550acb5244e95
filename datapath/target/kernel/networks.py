"""Per-network kernel objects, shared by the port, route and service tables.

A network exists in the kernel while any entry refers to it: a
policy-routing table (TABLE_BASE + id, one per family: the kernel keeps IPv4
and IPv6 tables apart under the same number), a VXLAN device (VNI = network
id, carrying both families over the IPv4 underlay) and a conntrack zone
(one for both families: the zone map is in the `inet` table). Ports join it
by an `iif` rule per family into its table and an element of the port ->
network (mark) and port -> zone maps.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from finsy.proto import rpc_code

from datapath.entries import P4Error, ip
from datapath.target.kernel.context import (FAMILIES, RULE_PRIORITY, TABLE_BASE, VXLAN_PORT, KernelContext,
                                            tunnel_mac)
from datapath.target.kernel.nftelem import Element, Elements
from podnetwork import faults


@dataclass
class Network:
    id: int
    zone: int
    refs: int = 0
    vxlan: str = ""

    @property
    def routes(self) -> int:
        """Its policy-routing table."""
        return TABLE_BASE + self.id


class Networks:
    """The networks in use, reference-counted by the entries that name them."""

    def __init__(self, ctx: KernelContext) -> None:
        self.ctx = ctx
        self.by_id: dict[int, Network] = {}

    def __getitem__(self, net: int) -> Network:
        return self.by_id[net]

    def acquire(self, net: int) -> Network:
        n = self.by_id.get(net)
        if n is None and net in self.ctx.layer2:
            raise P4Error(rpc_code.FAILED_PRECONDITION, f"network {net} is a layer 2 segment on this node "
                                                        "(its ports have no addresses); it cannot be routed")
        if n is None:
            zone = 1 + max((x.zone for x in self.by_id.values()), default=0)
            if faults.on("shared-conntrack-zone"):
                zone = 1
            n = self.by_id[net] = Network(net, zone)
            self._create(n)
        n.refs += 1
        return n

    def release(self, net: int) -> None:
        n = self.by_id[net]
        n.refs -= 1
        if n.refs:
            return
        del self.by_id[net]
        self.ctx.settle()  # queued routes through its tunnel go before the tunnel does
        ipr, quiet = self.ctx.ipr, self.ctx.quiet
        quiet(ipr.link, "del", ifname=n.vxlan)
        for f in FAMILIES:
            quiet(ipr.rule, "del", family=f.af, table=n.routes, priority=RULE_PRIORITY, iifname=n.vxlan)
            quiet(ipr.route, "del", family=f.af, dst=f.any, table=n.routes)
        self.port_elements(n.vxlan, n, add=False)

    def _create(self, n: Network) -> None:
        ctx = self.ctx
        n.vxlan = f"{ctx.prefix}v{n.id}"
        options: dict[str, Any] = dict(kind="vxlan", vxlan_id=n.id, vxlan_port=VXLAN_PORT, vxlan_learning=0)
        if ctx.vtep:
            options.update(vxlan_local=ctx.vtep, address=tunnel_mac(ip(ctx.vtep)))
        if ctx.underlay:
            options["vxlan_link"] = ctx.index(ctx.underlay)
        if not ctx.ipr.link_lookup(ifname=n.vxlan):
            ctx.ipr.link("add", ifname=n.vxlan, **options)
        ctx.ipr.link("set", ifname=n.vxlan, state="up")
        self.join(n.vxlan, n)
        self.default_route(n)

    def default_route(self, n: Network) -> None:
        # The network's default route points into its own tunnel device, which
        # has no neighbour for unknown addresses, so such packets die there.
        # It keeps a network's packets out of the IPU's main table (the
        # underlay), and, being a unicast route through another device, lets
        # proxy ARP answer pods for any on-link address, service VIPs included,
        # without a route per VIP. Queued routes go first: one may be a
        # default route this one replaces.
        self.ctx.settle()
        for f in FAMILIES:
            self.ctx.ipr.route("replace", family=f.af, dst=f.any, table=n.routes, oif=self.ctx.index(n.vxlan))

    def join(self, link: str, n: Network) -> None:
        """Make `link`'s packets the network's: its iif rule and map elements."""
        ipr = self.ctx.ipr
        for f in FAMILIES:
            self.ctx.quiet(ipr.rule, "del", family=f.af, table=n.routes, priority=RULE_PRIORITY, iifname=link)
            ipr.rule("add", family=f.af, table=n.routes, priority=RULE_PRIORITY, iifname=link)
        self.port_elements(link, n, add=True)

    def leave(self, link: str, net: int) -> None:
        for f in FAMILIES:
            self.ctx.quiet(self.ctx.ipr.rule, "del", family=f.af, table=TABLE_BASE + net, priority=RULE_PRIORITY,
                           iifname=link)
        self.port_elements(link, self.by_id[net], add=False)

    def port_elements(self, link: str, n: Network, add: bool) -> None:
        q, t = self.ctx.pending.elements, self.ctx.table
        # An interface name is 16 bytes (IFNAMSIZ) in a register, a mark 4 and
        # a conntrack zone 2, both in host byte order.
        name = (f'"{link}"', link.encode().ljust(16, b"\0"))
        q.append(Elements(add, t, "port_net", [Element(*name, str(n.id), n.id.to_bytes(4, sys.byteorder))]))
        if self.ctx.features.ct_zone_map:
            q.append(Elements(add, t, "port_zone", [Element(*name, str(n.zone), n.zone.to_bytes(2, sys.byteorder))]))
