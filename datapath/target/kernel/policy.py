"""Policy: the policy_pod and policy_rule tables, and policy_pod's direct counter.

A pod isolated in a direction is an element of the `ingress`/`egress`
verdict map, (network, pod) -> jump to its group's chain; the chain returns
(allows) when (peer, proto, port) is in the group's concatenated interval
set and drops otherwise. P4 ternary/range rules may overlap, the kernel's
interval sets refuse overlapping elements, and rules only ever allow: so a
group's set holds the union of its rules as disjoint boxes, recomputed once
per batch for the groups the batch touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from finsy.proto import rpc_code

from datapath.entries import Entry, P4Error, Range, Ternary, ip_text
from datapath.pipeline import DIRECTION_EGRESS, DIRECTION_INGRESS
from datapath.target.boxes import Box3, disjoint_3d
from datapath.target.kernel.context import KernelContext, KernelRealizer, exact, network_of, param, realizes
from datapath.target.realizer import Counts
from datapath.target.store import Key, Store

GroupKey = tuple[int, int]  # direction, group


def verdict_map(direction: int) -> str:
    return "ingress" if direction == DIRECTION_INGRESS else "egress"


def group_chain(gkey: GroupKey) -> str:
    return f"pg_{verdict_map(gkey[0])}_{gkey[1]}"


def group_set(gkey: GroupKey) -> str:
    return f"pgs_{verdict_map(gkey[0])}_{gkey[1]}"


@dataclass
class Group:
    refs: int = 0
    elements: frozenset[str] = frozenset()


@dataclass
class Groups:
    """Policy groups in the kernel, counted by the pods and rules naming them."""

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
        chain, s, t = group_chain(gkey), group_set(gkey), self.ctx.table
        peer = "ip saddr" if gkey[0] == DIRECTION_INGRESS else "ip daddr"
        self.ctx.pending.create += [
            f"add set inet {t} {s} {{ type ipv4_addr . inet_proto . inet_service; flags interval; }}",
            f"add chain inet {t} {chain}",
            f"add rule inet {t} {chain} {peer} . meta l4proto . th dport @{s} return",
            f"add rule inet {t} {chain} counter drop",
        ]

    def finish(self, store: Store) -> None:
        """Queue the set changes of the groups this batch touched, and the removal of dead ones."""
        touched, self.touched = self.touched, set()
        rules = list(store.entries("policy_rule")) if touched else []
        for gkey in sorted(touched):
            self._elements(gkey, [e for e in rules if rule_group(e) == gkey])
        dying, self.dying = self.dying, {}
        for gkey in sorted(dying):
            self.ctx.pending.delete += [f"delete chain inet {self.ctx.table} {group_chain(gkey)}",
                                        f"delete set inet {self.ctx.table} {group_set(gkey)}"]

    def _elements(self, gkey: GroupKey, rules: list[Entry]) -> None:
        g = self.live.get(gkey)
        if g is None:
            return
        want = frozenset(_element(b) for b in disjoint_3d(_box(e) for e in rules))
        s, q = f"inet {self.ctx.table} {group_set(gkey)}", self.ctx.pending.elements
        gone, added = sorted(g.elements - want), sorted(want - g.elements)
        # Removals first: the kernel refuses an element overlapping a live one.
        for chunk in _chunks(gone):
            q.append(f"delete element {s} {{ {', '.join(chunk)} }}")
        for chunk in _chunks(added):
            q.append(f"add element {s} {{ {', '.join(chunk)} }}")
        g.elements = want


class _PolicyRealizer(KernelRealizer):
    def require(self) -> Groups:
        if not self.ctx.features.nft_concat_intervals:
            raise P4Error(rpc_code.UNIMPLEMENTED, "policy: this kernel has no concatenated interval sets")
        return self.ctx.part(Groups)


@realizes("policy_pod")
class PolicyPodRealizer(_PolicyRealizer):
    def apply(self, old: Entry | None, new: Entry | None) -> None:
        groups, t, q = self.require(), self.ctx.table, self.ctx.pending.elements
        if old is not None:
            d = int(exact(old, "direction"))
            q.append(f"delete element inet {t} {verdict_map(d)} {{ {_member(old)} }}")
            groups.release((d, param(old)))
        if new is not None:
            gkey = (int(exact(new, "direction")), param(new))
            groups.acquire(gkey)
            q.append(f"add element inet {t} {verdict_map(gkey[0])} {{ {_member(new)} : jump {group_chain(gkey)} }}")

    def counters(self, entries: Sequence[Entry]) -> dict[Key, Counts]:
        # Membership counts in its map element: packets of new flows that
        # looked the pod up (established flows are accepted before).
        found: dict[str, Counts] = {}
        for direction in (DIRECTION_INGRESS, DIRECTION_EGRESS):
            listed = self.ctx.nft_json("list", "map", "inet", self.ctx.table, verdict_map(direction))
            for item in listed.get("nftables", []):
                for key, _ in (item.get("map") or {}).get("elem", []):
                    elem = key.get("elem", {})
                    net, pod = elem["val"]["concat"]
                    c = elem.get("counter", {})
                    found[f"{direction}/{net}/{pod}"] = (c.get("packets", 0), c.get("bytes", 0))
        return {e.key: found[_where(e)] for e in entries if _where(e) in found}


@realizes("policy_rule")
class PolicyRuleRealizer(_PolicyRealizer):
    def check(self, e: Entry) -> None:
        _box(e)  # refuses masks the interval sets cannot express

    def apply(self, old: Entry | None, new: Entry | None) -> None:
        groups = self.require()
        if new is not None:
            groups.acquire(rule_group(new))
        if old is not None:
            groups.release(rule_group(old))

    def finish(self, store: Store) -> None:
        self.ctx.part(Groups).finish(store)


def rule_group(e: Entry) -> GroupKey:
    return (int(exact(e, "direction")), int(exact(e, "group")))


def _member(e: Entry) -> str:
    return f"{network_of(e)} . {ip_text(int(exact(e, 'pod_ip')))}"


def _where(e: Entry) -> str:
    """A policy_pod entry as its counter is found in the listed map."""
    return f"{exact(e, 'direction')}/{network_of(e)}/{ip_text(int(exact(e, 'pod_ip')))}"


def _ternary_range(m: object, width: int) -> tuple[int, int]:
    if m is None:
        return 0, (1 << width) - 1
    assert isinstance(m, Ternary)
    span = ((1 << width) - 1) & ~m.mask
    if span & (span + 1):
        raise P4Error(rpc_code.UNIMPLEMENTED, "policy_rule: only prefix masks are supported")
    return m.value, m.value | span


def _box(e: Entry) -> Box3:
    alo, ahi = _ternary_range(e.get("peer"), 32)
    plo, phi = _ternary_range(e.get("proto"), 8)
    port = e.get("port")
    qlo, qhi = (port.low, port.high) if isinstance(port, Range) else (0, 65535)
    return (alo, ahi, plo, phi, qlo, qhi)


def _element(b: Box3) -> str:
    def span(lo: int, hi: int, text: bool = False) -> str:
        show = ip_text if text else str
        return show(lo) if lo == hi else f"{show(lo)}-{show(hi)}"

    return f"{span(b[0], b[1], text=True)} . {span(b[2], b[3])} . {span(b[4], b[5])}"


def _chunks(items: list[str], size: int = 2000) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
