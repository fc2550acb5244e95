"""Policy: the policy_pod(6) and policy_rule(6) tables, and policy_pod's direct counter.

A pod isolated in a direction is an element of the `ingress`/`egress`
verdict map of its family (`ingress6`...), (network, pod) -> jump to its
group's chain; the chain returns (allows) when (peer, proto, port) is in the
group's concatenated interval set of the packet's family and drops
otherwise. A group is one chain for both families, with one set each. P4
ternary/range rules may overlap, the kernel's interval sets refuse
overlapping elements, and rules only ever allow: so a group's set holds the
union of its rules as disjoint boxes, recomputed once per batch for the
groups the batch touched.

Verdict counters: each (network, direction, group) in use has two named
counters, `pst_a_*` (new flows the group allowed: first packets only, as
established flows pass before policy) and `pst_d_*` (packets it denied),
chosen by the packet's network mark through the group's `pgma_`/`pgmd_`
maps; `multinet ipu --metrics-port` reads them by listing only the counter
objects, never a rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from finsy.proto import rpc_code

from datapath.entries import Entry, P4Error, Range, Ternary
from datapath.pipeline import DIRECTION_EGRESS, DIRECTION_INGRESS
from datapath.target.boxes import Box3, disjoint_3d
from datapath.target.kernel import nftobj
from datapath.target.kernel.context import (FAMILIES, Family, KernelContext, KernelRealizer, exact, family,
                                            network_of, param, realizes)
from datapath.target.kernel.stats import mark
from datapath.target.realizer import Counts
from datapath.target.store import Key, Store

GroupKey = tuple[int, int]  # direction, group


def verdict_map(direction: int, f: Family | None = None) -> str:
    return ("ingress" if direction == DIRECTION_INGRESS else "egress") + (f.suffix if f else "")


def group_chain(gkey: GroupKey) -> str:
    return f"pg_{verdict_map(gkey[0])}_{gkey[1]}"


def group_set(gkey: GroupKey, f: Family) -> str:
    return f"pgs{f.suffix}_{verdict_map(gkey[0])}_{gkey[1]}"


def group_counters(gkey: GroupKey, allowed: bool) -> str:
    """The map of a group choosing its verdict counter by network mark."""
    return f"pgm{'a' if allowed else 'd'}_{verdict_map(gkey[0])}_{gkey[1]}"


def stats_counter(net: int, gkey: GroupKey, allowed: bool) -> str:
    """The named counter of what a group allowed (new flows) or denied (packets) on one network."""
    return f"pst_{'a' if allowed else 'd'}_{net}_{gkey[0]}_{gkey[1]}"


@dataclass
class Group:
    refs: int = 0
    elements: dict[int, frozenset[str]] = field(default_factory=dict)  # by family version


@dataclass
class Groups:
    """Policy groups in the kernel, counted by the pods and rules (of both families) naming them."""

    ctx: KernelContext
    live: dict[GroupKey, Group] = field(default_factory=dict)
    touched: set[GroupKey] = field(default_factory=set)  # by this batch
    dying: dict[GroupKey, Group] = field(default_factory=dict)  # released to zero in this batch

    def acquire(self, gkey: GroupKey) -> None:
        g = self.live.get(gkey)
        if g is None and gkey in self.dying:
            # Released and taken again within one batch: keep the kernel objects.
            g = self.live[gkey] = self.dying.pop(gkey)
        if g is None:
            g = self.live[gkey] = Group()
            self._create(gkey)
        g.refs += 1
        self.touched.add(gkey)

    def release(self, gkey: GroupKey) -> None:
        g = self.live[gkey]
        g.refs -= 1
        self.touched.add(gkey)
        if g.refs == 0:
            self.dying[gkey] = self.live.pop(gkey)

    def _create(self, gkey: GroupKey) -> None:
        chain, t = group_chain(gkey), self.ctx.table
        side = "saddr" if gkey[0] == DIRECTION_INGRESS else "daddr"
        allowed, denied = group_counters(gkey, True), group_counters(gkey, False)
        q = self.ctx.pending.create
        q += [f"add map inet {t} {m} {{ type mark : counter; }}" for m in (allowed, denied)]
        q.append(f"add chain inet {t} {chain}")
        # Each verdict twice: counted through the network's counter, and bare
        # should the map miss (a failed lookup ends a rule without its verdict).
        for f in FAMILIES:
            s = group_set(gkey, f)
            match = f"{f.nft} {side} . meta l4proto . th dport @{s}"
            q += [f"add set inet {t} {s} {{ type {f.addr_type} . inet_proto . inet_service; flags interval; }}",
                  f"add rule inet {t} {chain} {match} counter name meta mark map @{allowed} return",
                  f"add rule inet {t} {chain} {match} return"]
        q += [f"add rule inet {t} {chain} counter name meta mark map @{denied} drop", f"add rule inet {t} {chain} drop"]

    def finish(self, store: Store) -> None:
        """Queue the set changes of the groups this batch touched, and the removal of dead ones."""
        touched, self.touched = self.touched, set()
        rules = {f.version: list(store.entries(f"policy_rule{f.suffix}")) if touched else [] for f in FAMILIES}
        for gkey in sorted(touched):
            for f in FAMILIES:
                self._elements(gkey, f, [e for e in rules[f.version] if rule_group(e) == gkey])
        dying, self.dying = self.dying, {}
        t = self.ctx.table
        for gkey in sorted(dying):
            self.ctx.pending.delete.append(f"delete chain inet {t} {group_chain(gkey)}")
            self.ctx.pending.delete += [f"delete set inet {t} {group_set(gkey, f)}" for f in FAMILIES]
            self.ctx.pending.delete += [f"delete map inet {t} {group_counters(gkey, a)}" for a in (True, False)]

    def _elements(self, gkey: GroupKey, f: Family, rules: list[Entry]) -> None:
        g = self.live.get(gkey)
        if g is None:
            return
        want = frozenset(_element(b, f) for b in disjoint_3d(_box(e, f) for e in rules))
        have = g.elements.get(f.version, frozenset())
        s, q = f"inet {self.ctx.table} {group_set(gkey, f)}", self.ctx.pending.elements
        gone, added = sorted(have - want), sorted(want - have)
        # Removals first: the kernel refuses an element overlapping a live one.
        for chunk in _chunks(gone):
            q.append(f"delete element {s} {{ {', '.join(chunk)} }}")
        for chunk in _chunks(added):
            q.append(f"add element {s} {{ {', '.join(chunk)} }}")
        g.elements[f.version] = want


class _PolicyRealizer(KernelRealizer):
    @property
    def family(self) -> Family:
        return family(self.table)

    def require(self) -> Groups:
        if not self.ctx.features.nft_concat_intervals:
            raise P4Error(rpc_code.UNIMPLEMENTED, f"{self.table}: this kernel has no concatenated interval sets")
        return self.ctx.part(Groups)


class Stats:
    """The verdict counters of each (network, group) in use, counted by the pods (of both families) naming them."""

    def __init__(self, ctx: KernelContext) -> None:
        self.ctx = ctx
        self.refs: dict[tuple[int, GroupKey], int] = {}
        self.dying: set[tuple[int, GroupKey]] = set()  # released to zero in this batch

    def acquire(self, net: int, gkey: GroupKey) -> None:
        key = (net, gkey)
        self.refs[key] = self.refs.get(key, 0) + 1
        if self.refs[key] > 1:
            return
        if key in self.dying:  # released and taken again within one batch: keep the counters
            self.dying.discard(key)
            return
        t, q = self.ctx.table, self.ctx.pending
        for allowed in (True, False):
            name = stats_counter(net, gkey, allowed)
            q.create.append(f"add counter inet {t} {name}")
            q.elements.append(f'add element inet {t} {group_counters(gkey, allowed)} {{ {net} : "{name}" }}')

    def release(self, net: int, gkey: GroupKey) -> None:
        key = (net, gkey)
        self.refs[key] -= 1
        if self.refs[key]:
            return
        del self.refs[key]
        self.dying.add(key)

    def finish(self) -> None:
        """Queue the removal of the counters no pod names any more."""
        dying, self.dying = self.dying, set()
        t, q = self.ctx.table, self.ctx.pending
        for net, gkey in sorted(dying):
            for allowed in (True, False):
                q.elements.append(f"delete element inet {t} {group_counters(gkey, allowed)} {{ {net} }}")
                q.delete.append(f"delete counter inet {t} {stats_counter(net, gkey, allowed)}")


@realizes("policy_pod")
class PolicyPodRealizer(_PolicyRealizer):
    def apply(self, old: Entry | None, new: Entry | None) -> None:
        groups, t, q, f = self.require(), self.ctx.table, self.ctx.pending.elements, self.family
        stats = self.ctx.part(Stats)
        if new is not None:  # taken before the old entry lets go, so a MODIFY keeps shared objects
            gkey = (int(exact(new, "direction")), param(new))
            groups.acquire(gkey)
            stats.acquire(network_of(new), gkey)
        if old is not None:
            d = int(exact(old, "direction"))
            q.append(f"delete element inet {t} {verdict_map(d, f)} {{ {_member(old)} }}")
            stats.release(network_of(old), (d, param(old)))
            groups.release((d, param(old)))
        if new is not None:
            q.append(f"add element inet {t} {verdict_map(gkey[0], f)} "
                     f"{{ {_member(new)} : jump {group_chain(gkey)} }}")

    def counters(self, entries: Sequence[Entry]) -> dict[Key, Counts]:
        # Membership counts in its map element: packets of new flows that
        # looked the pod up (established flows are accepted before). Only the
        # two verdict maps of the family are dumped (over netlink), never the rules.
        f, found = self.family, {}
        for direction in (DIRECTION_INGRESS, DIRECTION_EGRESS):
            for key, _, counts in nftobj.element_counters(self.ctx.table, verdict_map(direction, f)):
                pod = f.text(int.from_bytes(key[4 : 4 + f.width // 8], "big"))
                found[f"{direction}/{mark(key)}/{pod}"] = counts
        return {e.key: found[_where(e)] for e in entries if _where(e) in found}


@realizes("policy_pod6")
class PolicyPod6Realizer(PolicyPodRealizer):
    pass


@realizes("policy_rule")
class PolicyRuleRealizer(_PolicyRealizer):
    def check(self, e: Entry) -> None:
        _box(e, self.family)  # refuses masks the interval sets cannot express

    def apply(self, old: Entry | None, new: Entry | None) -> None:
        groups = self.require()
        if new is not None:
            groups.acquire(rule_group(new))
        if old is not None:
            groups.release(rule_group(old))

    def finish(self, store: Store) -> None:
        self.ctx.part(Stats).finish()  # before the groups: their maps hold the counters' elements
        self.ctx.part(Groups).finish(store)  # once per batch for both families: a second call finds nothing touched


@realizes("policy_rule6")
class PolicyRule6Realizer(PolicyRuleRealizer):
    pass


def rule_group(e: Entry) -> GroupKey:
    return (int(exact(e, "direction")), int(exact(e, "group")))


def _member(e: Entry) -> str:
    return f"{network_of(e)} . {family(e.table).text(int(exact(e, 'pod_ip')))}"


def _where(e: Entry) -> str:
    """A policy_pod entry as its counter is found in the listed map."""
    return f"{exact(e, 'direction')}/{network_of(e)}/{family(e.table).text(int(exact(e, 'pod_ip')))}"


def _ternary_range(m: object, width: int) -> tuple[int, int]:
    if m is None:
        return 0, (1 << width) - 1
    assert isinstance(m, Ternary)
    span = ((1 << width) - 1) & ~m.mask
    if span & (span + 1):
        raise P4Error(rpc_code.UNIMPLEMENTED, "policy_rule: only prefix masks are supported")
    return m.value, m.value | span


def _box(e: Entry, f: Family) -> Box3:
    alo, ahi = _ternary_range(e.get("peer"), f.width)
    plo, phi = _ternary_range(e.get("proto"), 8)
    port = e.get("port")
    qlo, qhi = (port.low, port.high) if isinstance(port, Range) else (0, 65535)
    return (alo, ahi, plo, phi, qlo, qhi)


def _element(b: Box3, f: Family) -> str:
    def span(lo: int, hi: int, text: bool = False) -> str:
        show = f.text if text else str
        return show(lo) if lo == hi else f"{show(lo)}-{show(hi)}"

    return f"{span(b[0], b[1], text=True)} . {span(b[2], b[3])} . {span(b[4], b[5])}"


def _chunks(items: list[str], size: int = 2000) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
