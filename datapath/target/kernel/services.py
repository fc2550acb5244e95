"""Services: the service table (an action selector) and its direct counter.

No chain or anonymous map per service: creating thousands of anonymous sets
in one table is quadratic in the kernel (50 s for 10,000). Instead one
`lb_<n>` chain per group size picks a bucket by numgen (kept in ct mark, so
conntrack remembers the choice) and one shared map holds every
(service, bucket) -> backend. Each service counts in a named counter chosen
through the `svc_counters` map.
"""

from __future__ import annotations

from collections.abc import Sequence

from finsy.proto import rpc_code

from datapath.entries import Entry, P4Error, ip_text
from datapath.target.kernel.context import KernelContext, KernelRealizer, exact, network_of, realizes
from datapath.target.kernel.networks import Networks
from datapath.target.realizer import Counts
from datapath.target.store import Key


class LbChains:
    """The `lb_<n>` chains made so far, one per group size."""

    def __init__(self, ctx: KernelContext) -> None:
        self.ctx = ctx
        self.sizes: set[int] = set()

    def need(self, size: int) -> None:
        if size in self.sizes:
            return
        self.sizes.add(size)
        t = self.ctx.table
        self.ctx.pending.create += [
            f"add chain inet {t} lb_{size}",
            f"add rule inet {t} lb_{size} ct mark set numgen random mod {size} "
            f"dnat ip to meta mark . ip daddr . meta l4proto . th dport . ct mark map @backends",
        ]


def service_name(e: Entry) -> str:
    """The named nft counter of a service entry."""
    return f"svc_{network_of(e)}_{exact(e, 'vip')}_{exact(e, 'proto')}_{exact(e, 'port')}"


@realizes("service")
class ServiceRealizer(KernelRealizer):
    def apply(self, old: Entry | None, new: Entry | None) -> None:
        e = new or old
        assert e is not None
        if not self.ctx.features.numgen_dnat_map:
            raise P4Error(rpc_code.UNIMPLEMENTED, "service: this kernel has no numgen DNAT maps")
        net = network_of(e)
        key = f"{net} . {ip_text(int(exact(e, 'vip')))} . {exact(e, 'proto')} . {exact(e, 'port')}"
        old_size = sum(c.weight for c in old.actions) if old else 0
        new_size = sum(c.weight for c in new.actions) if new else 0
        self._backends(key, old_size, new)
        if old is None and new is not None:
            self.ctx.part(Networks).acquire(net)
            self._counter(key, e, add=True)
        if new is None or old is None or old_size != new_size:
            q, t = self.ctx.pending.elements, self.ctx.table
            if old is not None:
                q.append(f"delete element inet {t} svc {{ {key} }}")
            if new is not None:
                q.append(f"add element inet {t} svc {{ {key} : goto lb_{new_size} }}")
        if new is None and old is not None:
            self._counter(key, e, add=False)
            self.ctx.part(Networks).release(net)

    def _backends(self, key: str, old_size: int, new: Entry | None) -> None:
        """Replace the service's (bucket -> backend) elements: one bucket per unit of weight."""
        q, t = self.ctx.pending.elements, self.ctx.table
        if old_size:
            q.append(f"delete element inet {t} backends {{ "
                     + ", ".join(f"{key} . {i}" for i in range(old_size)) + " }")
        if new is not None:
            self.ctx.part(LbChains).need(sum(c.weight for c in new.actions))
            buckets = [params for call in new.actions for params in [call.params] * call.weight]
            q.append(f"add element inet {t} backends {{ " + ", ".join(
                f"{key} . {i} : {ip_text(int(b[0]))} . {b[1]}" for i, b in enumerate(buckets)) + " }")

    def _counter(self, key: str, e: Entry, add: bool) -> None:
        if not self.ctx.features.counter_map:
            return
        q, t, name = self.ctx.pending, self.ctx.table, service_name(e)
        if add:
            q.create.append(f"add counter inet {t} {name}")
            q.elements.append(f'add element inet {t} svc_counters {{ {key} : "{name}" }}')
        else:
            q.elements.append(f"delete element inet {t} svc_counters {{ {key} }}")
            q.delete.append(f"delete counter inet {t} {name}")

    def counters(self, entries: Sequence[Entry]) -> dict[Key, Counts]:
        # Only the counter objects are listed: listing the table makes nft
        # load the whole ruleset (seconds at 10,000 services).
        found: dict[str, Counts] = {}
        for item in self.ctx.nft_json("list", "counters", "table", "inet", self.ctx.table).get("nftables", []):
            counter = item.get("counter")
            if counter and counter["name"].startswith("svc_"):
                found[counter["name"]] = (counter["packets"], counter["bytes"])
        return {e.key: found[service_name(e)] for e in entries if service_name(e) in found}
