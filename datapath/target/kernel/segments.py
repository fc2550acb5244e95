"""Layer 2 segments: address-less networks, bridged in the IPU.

A network whose ports join by `set_bridge` has no addresses, so nothing of
it can be routed, policed or load-balanced (the bridge family has no
conntrack here, and those need addresses anyway): its ports and its VXLAN
device (VNI = network id, learning remote MACs from what arrives) are ports
of one bridge. Each `flood` entry adds the all-zeros FDB entry toward one
remote VTEP, so broadcast, multicast and not-yet-learnt frames (IPv6
neighbour discovery, ARP of the pods' own choosing) reach every node of the
segment by head-end replication.

A network id is routed or bridged on a node, never both: the kernel allows
one VXLAN device per VNI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from finsy.proto import rpc_code

from datapath.entries import Entry, P4Error, ip, ip_text
from datapath.target.kernel.context import (NUD_PERMANENT, VXLAN_PORT, KernelContext, KernelRealizer, exact,
                                            network_of, realizes, tunnel_mac)

ALL_ZEROS = "00:00:00:00:00:00"


@dataclass
class Segment:
    id: int
    bridge: str
    vxlan: str
    refs: int = 0


class Segments:
    def __init__(self, ctx: KernelContext) -> None:
        self.ctx = ctx
        self.by_id: dict[int, Segment] = {}

    def acquire(self, net: int) -> Segment:
        from datapath.target.kernel.networks import Networks  # the routed side, to refuse mixing

        if net in self.ctx.part(Networks).by_id:
            raise P4Error(rpc_code.FAILED_PRECONDITION, f"network {net} is routed on this node; it cannot be bridged")
        seg = self.by_id.get(net)
        if seg is None:
            seg = self.by_id[net] = Segment(net, f"{self.ctx.prefix}b{net}", f"{self.ctx.prefix}v{net}")
            self.ctx.layer2.add(net)
            self._create(seg)
        seg.refs += 1
        return seg

    def release(self, net: int) -> None:
        seg = self.by_id[net]
        seg.refs -= 1
        if seg.refs:
            return
        del self.by_id[net]
        self.ctx.layer2.discard(net)
        self.ctx.quiet(self.ctx.ipr.link, "del", ifname=seg.vxlan)
        self.ctx.quiet(self.ctx.ipr.link, "del", ifname=seg.bridge)

    def _create(self, seg: Segment) -> None:
        ctx = self.ctx
        if not ctx.ipr.link_lookup(ifname=seg.bridge):
            ctx.ipr.link("add", ifname=seg.bridge, kind="bridge")
        # The bridge is no host of the segment: no address, no neighbour discovery of its own.
        ctx.write_sysctl(f"net/ipv6/conf/{seg.bridge}/disable_ipv6", "1")
        options: dict[str, Any] = dict(kind="vxlan", vxlan_id=seg.id, vxlan_port=VXLAN_PORT, vxlan_learning=1)
        if ctx.vtep:
            options.update(vxlan_local=ctx.vtep, address=tunnel_mac(ip(ctx.vtep)))
        if ctx.underlay:
            options["vxlan_link"] = ctx.index(ctx.underlay)
        if not ctx.ipr.link_lookup(ifname=seg.vxlan):
            ctx.ipr.link("add", ifname=seg.vxlan, **options)
        ctx.ipr.link("set", ifname=seg.vxlan, master=ctx.index(seg.bridge), state="up")
        ctx.ipr.link("set", ifname=seg.bridge, state="up")

    def join(self, net: int, link: str) -> None:
        seg = self.acquire(net)
        self.ctx.write_sysctl(f"net/ipv6/conf/{link}/disable_ipv6", "1")  # a bridge port is no host either
        self.ctx.ipr.link("set", index=self.ctx.index(link), master=self.ctx.index(seg.bridge), state="up")

    def leave(self, net: int, link: str) -> None:
        found = self.ctx.ipr.link_lookup(ifname=link)
        if found:
            self.ctx.quiet(self.ctx.ipr.link, "set", index=found[0], master=0)
            self.ctx.write_sysctl(f"net/ipv6/conf/{link}/disable_ipv6", "0")  # it may be routed next
        self.release(net)


@realizes("flood")
class FloodRealizer(KernelRealizer):
    def apply(self, old: Entry | None, new: Entry | None) -> None:
        segments = self.ctx.part(Segments)
        if new is not None:
            seg = segments.acquire(network_of(new))
            self.ctx.ipr.fdb("append", ifindex=self.ctx.index(seg.vxlan), lladdr=ALL_ZEROS,
                             dst=ip_text(int(exact(new, "vtep"))), state=NUD_PERMANENT)
        if old is not None:
            seg = segments.by_id[network_of(old)]
            if new is None:
                self.ctx.quiet(self.ctx.ipr.fdb, "del", ifindex=self.ctx.index(seg.vxlan), lladdr=ALL_ZEROS,
                               dst=ip_text(int(exact(old, "vtep"))))
            segments.release(network_of(old))
