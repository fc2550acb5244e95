"""Services: the service and service6 tables (action selectors) and their direct counters.

No chain or anonymous map per service: creating thousands of anonymous sets
in one table is quadratic in the kernel (50 s for 10,000). Instead one
`lb<suffix>_<n>` chain per family and group size picks a bucket by numgen
(kept in ct mark, so conntrack remembers the choice) and one shared map per
family holds every (service, bucket) -> backend; that map counts per
element, so each bucket's counter is the new connections sent to its
backend (DNAT runs on a connection's first packet only). Each service counts
in a named counter chosen through the `svc_counters` map of its family.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from finsy.proto import rpc_code

from datapath.entries import Entry, P4Error
from datapath.target.kernel import nftobj
from datapath.target.kernel.context import (V6, Family, KernelContext, KernelRealizer, exact, family, network_of,
                                            realizes)
from datapath.target.kernel.ndproxy import NdProxy
from datapath.target.kernel.nftelem import Counter, Element, Elements, Goto, Ref
from datapath.target.kernel.networks import Networks
from datapath.target.realizer import Counts
from datapath.target.store import Key


class LbChains:
    """The `lb_<n>` and `lb6_<n>` chains made so far, one per family and group size."""

    def __init__(self, ctx: KernelContext) -> None:
        self.ctx = ctx
        self.made: set[tuple[str, int]] = set()

    def need(self, f: Family, size: int) -> str:
        chain = f"lb{f.suffix}_{size}"
        if (f.suffix, size) in self.made:
            return chain
        self.made.add((f.suffix, size))
        t = self.ctx.table
        self.ctx.pending.ahead += [
            f"add chain inet {t} {chain}",
            f"add rule inet {t} {chain} ct mark set numgen random mod {size} "
            f"dnat {f.nft} to meta mark . {f.nft} daddr . meta l4proto . th dport . ct mark map @backends{f.suffix}",
        ]
        return chain


def service_name(e: Entry) -> str:
    """The named nft counter of a service entry."""
    f = family(e.table)
    return f"svc{f.suffix}_{network_of(e)}_{exact(e, 'vip')}_{exact(e, 'proto')}_{exact(e, 'port')}"


def service_key(e: Entry) -> str:
    """The entry's key as the nft maps hold it: network . VIP . protocol . port."""
    f = family(e.table)
    return f"{network_of(e)} . {f.text(int(exact(e, 'vip')))} . {exact(e, 'proto')} . {exact(e, 'port')}"


def service_bytes(e: Entry) -> bytes:
    """The entry's key as the kernel's registers hold it: the mark in host
    order, the VIP, the protocol and the port, each padded to 4 bytes."""
    f = family(e.table)
    return (network_of(e).to_bytes(4, sys.byteorder) + f.raw(int(exact(e, "vip")))
            + int(exact(e, "proto")).to_bytes(1, "big") + b"\0\0\0" + _port(int(exact(e, "port"))))


def _port(port: int) -> bytes:
    return port.to_bytes(2, "big") + b"\0\0"


@realizes("service")
class ServiceRealizer(KernelRealizer):
    @property
    def family(self) -> Family:
        return family(self.table)

    def apply(self, old: Entry | None, new: Entry | None) -> None:
        e = new or old
        assert e is not None
        if not self.ctx.features.numgen_dnat_map:
            raise P4Error(rpc_code.UNIMPLEMENTED, f"{self.table}: this kernel has no numgen DNAT maps")
        net, f = network_of(e), self.family
        key, raw = service_key(e), service_bytes(e)  # the entry's key as nft text and as the kernel's registers
        old_size = sum(c.weight for c in old.actions) if old else 0
        new_size = sum(c.weight for c in new.actions) if new else 0
        chain = self._backends(key, raw, old_size, new, new_size)
        if old is None and new is not None:
            self.ctx.part(Networks).acquire(net)
            self._counter(key, raw, e, add=True)
            if f is V6:
                self.ctx.part(NdProxy).hold(net, int(exact(e, "vip")), None)
        if new is None or old is None or old_size != new_size:
            q, t = self.ctx.pending.elements, self.ctx.table
            if old is not None:
                q.append(Elements(False, t, f"svc{f.suffix}", [Element(key, raw)]))
            if new is not None:
                q.append(Elements(True, t, f"svc{f.suffix}", [Element(key, raw, f"goto {chain}", Goto(chain))]))
        if new is None and old is not None:
            self._counter(key, raw, e, add=False)
            if f is V6:
                self.ctx.part(NdProxy).release(net, int(exact(e, "vip")), None)
            self.ctx.part(Networks).release(net)

    def _backends(self, key: str, raw: bytes, old_size: int, new: Entry | None, new_size: int) -> str:
        """Replace the service's (bucket -> backend) elements: one bucket per unit of weight.
        Plain values (nftelem.Elements): an endpoint change alone goes over netlink."""
        q, t, f = self.ctx.pending.elements, self.ctx.table, self.family

        def bucket(i: int) -> tuple[str, bytes]:
            return f"{key} . {i}", raw + i.to_bytes(4, sys.byteorder)

        if old_size:
            q.append(Elements(False, t, f"backends{f.suffix}", [Element(*bucket(i)) for i in range(old_size)]))
        if new is None:
            return ""
        chain = self.ctx.part(LbChains).need(f, new_size)
        buckets = [params for call in new.actions for params in [call.params] * call.weight]
        q.append(Elements(True, t, f"backends{f.suffix}", [
            Element(*bucket(i), f"{f.text(int(b[0]))} . {b[1]}", f.raw(int(b[0])) + _port(int(b[1])))
            for i, b in enumerate(buckets)]))
        return chain

    def _counter(self, key: str, raw: bytes, e: Entry, add: bool) -> None:
        if not self.ctx.features.counter_map:
            return
        q, t, name, f = self.ctx.pending, self.ctx.table, service_name(e), self.family
        counters = f"svc_counters{f.suffix}"
        if add:
            dropped = Counter(False, t, name)
            if dropped in q.delete:
                # Deleted and inserted again in this batch: its new element would hold the
                # counter when the delete phase runs (EBUSY). Keep it, counting from zero.
                q.delete.remove(dropped)
                q.create.append(f"reset counter inet {t} {name}")
            else:
                q.create.append(Counter(True, t, name))
            q.elements.append(Elements(True, t, counters, [Element(key, raw, f'"{name}"', Ref(name))]))
        else:
            q.elements.append(Elements(False, t, counters, [Element(key, raw)]))
            q.delete.append(Counter(False, t, name))

    def counters(self, entries: Sequence[Entry]) -> dict[Key, Counts]:
        # Only the counter objects, dumped over netlink: nft would load the
        # whole table first (seconds at 10,000 services).
        found = nftobj.counters(self.ctx.table)
        return {e.key: found[service_name(e)] for e in entries if service_name(e) in found}


@realizes("service6")
class Service6Realizer(ServiceRealizer):
    pass
