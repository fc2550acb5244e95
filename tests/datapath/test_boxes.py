"""The disjoint decomposition the target installs for a policy group."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from datapath.target.boxes import disjoint_3d


def interval(top: int) -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(st.integers(0, top), st.integers(0, top)).map(lambda t: (min(t), max(t)))


boxes = st.lists(st.tuples(interval(15), interval(3), interval(7)).map(lambda b: (*b[0], *b[1], *b[2])),
                 max_size=8)


def inside(point: tuple[int, int, int], b: tuple[int, ...]) -> bool:
    return all(b[2 * i] <= point[i] <= b[2 * i + 1] for i in range(3))


@settings(max_examples=200)
@given(boxes)
def test_union_is_kept_and_pieces_are_disjoint(given_boxes: list[tuple[int, ...]]) -> None:
    pieces = disjoint_3d(given_boxes)  # type: ignore[arg-type]
    for point in itertools.product(range(16), range(4), range(8)):
        covering = sum(inside(point, p) for p in pieces)
        assert covering <= 1
        assert (covering == 1) == any(inside(point, b) for b in given_boxes)


def test_adjacent_addresses_with_the_same_ports_merge() -> None:
    pieces = disjoint_3d([(i, i, 6, 6, 80, 80) for i in range(100)])
    assert pieces == [(0, 99, 6, 6, 80, 80)]
