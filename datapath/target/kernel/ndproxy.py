"""IPv6 neighbour discovery answered by the IPU on a network's ports.

IPv4 pods resolve on-link peers, VIPs and gateways through proxy ARP, which
answers for any address routed through another device. IPv6 has no such
wildcard: the kernel answers a Neighbour Solicitation only for a proxy entry
of that exact address on that device (and refuses device-less entries for
IPv6, pndisc_constructor), so the IPU holds one entry per (port, address)
for every IPv6 host address its network knows: host routes (`route6` /128 of
any action, so a network's gateway answers as a /128 `drop`) and Service
VIPs. An address is never proxied on the port it lives behind, so a pod's
own Duplicate Address Detection is never answered by the IPU.

The cost is ports x addresses per network on a node; the kernel keeps proxy
entries in a 16-bucket hash, consulted only on solicitations.
"""

from __future__ import annotations

import socket
from collections import Counter

from datapath.target.kernel.context import V6, KernelContext

NTF_PROXY = 0x08

Home = str | None  # the port an address lives behind, None for a routed or virtual one


class NdProxy:
    def __init__(self, ctx: KernelContext) -> None:
        self.ctx = ctx
        self.ports: dict[int, set[str]] = {}  # network -> its ports
        self.addresses: dict[int, dict[int, Counter[Home]]] = {}  # network -> address -> holders by home
        self.installed: dict[int, dict[int, set[str]]] = {}  # network -> address -> ports answering

    def add_port(self, net: int, link: str) -> None:
        self.ports.setdefault(net, set()).add(link)
        for address in list(self.addresses.get(net, {})):
            self._sync(net, address)

    def remove_port(self, net: int, link: str) -> None:
        self.ports.get(net, set()).discard(link)
        for address in list(self.addresses.get(net, {})):
            self._sync(net, address)

    def hold(self, net: int, address: int, home: Home) -> None:
        self.addresses.setdefault(net, {}).setdefault(address, Counter())[home] += 1
        self._sync(net, address)

    def release(self, net: int, address: int, home: Home) -> None:
        holders = self.addresses[net][address]
        holders[home] -= 1
        if holders[home] <= 0:
            del holders[home]
        if not holders:
            del self.addresses[net][address]
        self._sync(net, address)

    def _sync(self, net: int, address: int) -> None:
        holders = self.addresses.get(net, {}).get(address, Counter())
        want = (self.ports.get(net, set()) - {h for h in holders if h is not None}) if holders else set()
        have = self.installed.setdefault(net, {}).get(address, set())
        text = V6.text(address)
        for link in sorted(have - want):
            self._proxy("del", link, text)
        for link in sorted(want - have):
            self._proxy("replace", link, text)
        if want:
            self.installed[net][address] = want
        else:
            self.installed[net].pop(address, None)

    def _proxy(self, verb: str, link: str, address: str) -> None:
        found = self.ctx.ipr.link_lookup(ifname=link)
        if not found:
            return  # the link is gone, and its proxy entries with it
        where = dict(dst=address, ifindex=found[0], flags=NTF_PROXY, family=socket.AF_INET6)
        if verb == "del":
            self.ctx.quiet(self.ctx.ipr.neigh, "del", **where)
        else:
            self.ctx.ipr.neigh("replace", **where)
