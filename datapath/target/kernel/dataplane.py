"""The kernel dataplane: the pipeline's tables realized in the Linux kernel of
the IPU namespace, by one realizer per table (forwarding.py, services.py,
policy.py), changed by one `nft -f` transaction per Write batch.

All kernel calls run on one worker thread that entered the namespace, so
netlink handles and child processes (nft) act there.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from finsy.proto import rpc_code
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from datapath import netns as ns
from datapath.entries import Entry, P4Error
from datapath.pipeline import PIPELINE, Pipeline
from datapath.target import features as feat
from datapath.target.kernel import forwarding, guard, policy, segments, services  # noqa: F401  (each registers its realizers)
from datapath.target.kernel.context import (FAMILIES, REALIZERS, RULE_PRIORITY, TABLE_BASE, VXLAN_PORT, KernelContext,
                                            KernelRealizer, Pending, nft, nft_table)
from datapath.target.kernel.ruleset import empty_pipeline
from datapath.target.kernel.stats import KernelStats, read_stats
from datapath.target.realizer import Counts, Refused
from datapath.target.store import Change, Key, Store

log = logging.getLogger(__name__)
T = TypeVar("T")


class Kernel:
    """A `Dataplane` (datapath.target.realizer) over the IPU namespace `netns`."""

    def __init__(self, netns: str, prefix: str, vtep: str | None = None, underlay: str | None = None,
                 pipeline: Pipeline = PIPELINE) -> None:
        self.netns, self.prefix = netns, prefix
        self.table = nft_table(prefix)
        classes = REALIZERS.classes(pipeline)  # refuses a pipeline with a table nobody realizes
        self._pool = ns.executor(netns, f"ipu-{netns}")
        self._worker = self._pool.submit(threading.get_ident).result()
        ipr: IPRoute = self._run(IPRoute)
        self.features = self._run(lambda: _detect(ipr, prefix))
        self.ctx = self._run(lambda: KernelContext(ipr, prefix, self.features, vtep, underlay))
        self.realizers: dict[str, KernelRealizer] = {t.name: cls(self.ctx) for t, cls in classes}
        log.info("kernel features in %s: %s", netns, self.features.as_dict())
        for what, how in self.features.used().items():
            log.info("  %s: %s", what, how)

    def _run(self, fn: Callable[[], T]) -> T:
        if threading.get_ident() == self._worker:
            return fn()  # inside a batch, already on the worker
        return self._pool.submit(fn).result()

    def batch(self, fn: Callable[[], T]) -> T:
        return self._run(fn)

    def close(self) -> None:
        self._run(self.ctx.close)
        self._pool.shutdown()

    # --- whole state ------------------------------------------------------------

    def reset(self) -> None:
        """Remove everything a previous run left and install the empty pipeline."""
        self._run(self._reset)

    def _reset(self) -> None:
        ctx, ipr = self.ctx, self.ctx.ipr
        nft(f"add table inet {self.table}\ndelete table inet {self.table}")
        for f in FAMILIES:
            for rule in ipr.get_rules(family=f.af):
                if rule.get("priority") == RULE_PRIORITY and (rule.get("table") or 0) >= TABLE_BASE:
                    ipr.rule("del", family=f.af, table=rule.get("table"), priority=RULE_PRIORITY,
                             iifname=rule.get("iifname"))
        for link in ipr.get_links():
            name = link.get("ifname")
            kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
            if (name.startswith(f"{self.prefix}v") and kind == "vxlan") or \
                    (name.startswith(f"{self.prefix}b") and kind == "bridge"):
                ipr.link("del", index=link["index"])
        for f in FAMILIES:
            for route in ipr.get_routes(family=f.af):
                if (route.get("table") or 0) >= TABLE_BASE:
                    ctx.quiet(ipr.route, "del", family=f.af, table=route.get("table"), type=route["type"],
                              dst=f"{route.get('dst') or f.any.split('/')[0]}/{route['dst_len']}")
        # The IPU namespace is the target's own: every IPv6 proxy entry in it is ours.
        subprocess.run(["ip", "-6", "neigh", "flush", "proxy"], capture_output=True, timeout=60)
        ctx.write_sysctl("net/ipv4/ip_forward", "1")
        ctx.write_sysctl("net/ipv6/conf/all/forwarding", "1")
        for scope in ("all", "default"):
            ctx.write_sysctl(f"net/ipv4/conf/{scope}/rp_filter", "0")
        ctx.nft_checked(empty_pipeline(self.table, self.features))
        ctx.forget()

    def rebuild(self, store: Store) -> None:
        """Rebuild the whole kernel state from the store (after a failed transaction)."""
        self.reset()
        for name in self.realizers:  # the description's order: ports before the routes using them
            for e in list(store.entries(name)):
                self.apply(Change(None, e))
        try:
            self.commit(store)
        except Refused as refused:
            raise P4Error(rpc_code.INTERNAL, f"rebuild: {refused.errors[0][1].message}") from refused

    # --- per batch --------------------------------------------------------------

    def check(self, e: Entry) -> None:
        self.realizers[e.table].check(e)

    def apply(self, change: Change) -> None:
        """Apply the netlink side of one update now and queue its nft side."""
        self._run(lambda: self._apply(change))

    def _apply(self, c: Change) -> None:
        e = c.new or c.old
        assert e is not None
        realizer = self.realizers[e.table]
        if not realizer.queues_routes:
            self.ctx.settle()
        self.ctx.owner = c
        try:
            realizer.apply(c.old, c.new)
        except (NetlinkError, OSError) as err:
            raise P4Error(rpc_code.INTERNAL, f"{e.table}: kernel refused: {err}") from err
        finally:
            self.ctx.owner = None

    def commit(self, store: Store) -> None:
        """Commit the queued nft changes in one transaction."""
        self._run(lambda: self._commit(store))

    def settle(self) -> list[tuple[Change, P4Error]]:
        """Send the queued routes; the changes whose routes the kernel refused.
        Their other effects (references, elements queued for nft) stay until
        the rebuild that the servicer then makes."""
        return self._run(self._settle)

    def _settle(self) -> list[tuple[Change, P4Error]]:
        self.ctx.settle()
        return _first_per_change(self.ctx.routes.take_refused())

    def _commit(self, store: Store) -> None:
        refused = self._settle()
        if refused:
            raise Refused(refused)  # nothing of the batch's nft part goes: the rebuild redoes it
        for realizer in self.realizers.values():
            realizer.finish(store)
        pending, self.ctx.pending = self.ctx.pending, Pending()
        self.ctx.commit(pending)

    # --- reading ------------------------------------------------------------------

    def counters(self, table: str, entries: Sequence[Entry]) -> dict[Key, Counts]:
        """Packets and bytes per entry of a table with direct counters.

        Listing makes nft load the whole ruleset (seconds at 10,000 services),
        so each table lists only its own counting objects.
        """
        realizer = self.realizers[table]
        return self._run(lambda: realizer.counters(entries))

    def stats(self) -> KernelStats:
        """Every counter object and the service buckets' counters (for /metrics)."""
        return self._run(lambda: read_stats(self.ctx))

    def ruleset(self) -> str:
        return self._run(lambda: subprocess.run(["nft", "list", "table", "inet", self.table],
                                                capture_output=True, text=True).stdout)


def _first_per_change(refused: list[tuple[object, str]]) -> list[tuple[Change, P4Error]]:
    """The first refusal of each change, as its update's error."""
    out: dict[int, tuple[Change, P4Error]] = {}
    for owner, reason in refused:
        if not isinstance(owner, Change):  # queued outside an update: the batch fails whole
            raise P4Error(rpc_code.INTERNAL, f"kernel refused a route: {reason}")
        e = owner.new or owner.old
        assert e is not None
        out.setdefault(id(owner), (owner, P4Error(rpc_code.INTERNAL, f"{e.table}: kernel refused: {reason}")))
    return list(out.values())


def _detect(ipr: IPRoute, prefix: str) -> feat.Features:
    def vxlan() -> bool:
        name = f"{prefix}probe"[:15]
        try:
            ipr.link("add", ifname=name, kind="vxlan", vxlan_id=1, vxlan_port=VXLAN_PORT)
            ipr.link("del", ifname=name)
            return True
        except NetlinkError:
            return False

    return feat.detect(lambda script: nft(script).returncode == 0, vxlan, prefix)
