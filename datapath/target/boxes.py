"""Disjoint decomposition of a union of (address, protocol, port) boxes.

The kernel's concatenated interval sets (nft "pipapo") refuse overlapping
elements, while P4 ternary/range entries may overlap freely. Policy rules only
ever allow, so the target installs the union of a group's rules as disjoint
boxes. A sweep over the address axis keeps this near linear in the rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

Box2 = tuple[int, int, int, int]  # proto low/high, port low/high
Box3 = tuple[int, int, int, int, int, int]  # address low/high, then Box2


def _union_1d(intervals: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


@lru_cache(maxsize=4096)
def disjoint_2d(boxes: frozenset[Box2]) -> tuple[Box2, ...]:
    """Disjoint (proto, port) boxes covering the union of `boxes`."""
    cuts = sorted({b[0] for b in boxes} | {b[1] + 1 for b in boxes})
    rows: list[tuple[int, int, tuple[tuple[int, int], ...]]] = []
    for lo, nxt in zip(cuts, cuts[1:]):
        ports = _union_1d((b[2], b[3]) for b in boxes if b[0] <= lo and b[1] >= nxt - 1)
        if rows and rows[-1][2] == ports and rows[-1][1] == lo - 1:
            rows[-1] = (rows[-1][0], nxt - 1, ports)  # same ports: extend the protocol row
        elif ports:
            rows.append((lo, nxt - 1, ports))
    return tuple((plo, phi, a, b) for plo, phi, ports in rows for a, b in ports)


def disjoint_3d(boxes: Iterable[Box3]) -> list[Box3]:
    """Disjoint (address, proto, port) boxes covering the union of `boxes`."""
    events: dict[int, list[tuple[int, Box2]]] = {}
    for b in boxes:
        inner = (b[2], b[3], b[4], b[5])
        events.setdefault(b[0], []).append((1, inner))
        events.setdefault(b[1] + 1, []).append((-1, inner))
    active: Counter[Box2] = Counter()
    out: list[Box3] = []
    points = sorted(events)
    current: tuple[Box2, ...] = ()
    start = 0
    for point in points:
        for delta, inner in events[point]:
            active[inner] += delta
            if not active[inner]:
                del active[inner]
        shape = disjoint_2d(frozenset(active)) if active else ()
        if shape != current:
            out.extend((start, point - 1, *s) for s in current)
            current, start = shape, point
    return out
