"""Truth tables and the verdict rules (3 consecutive successes, a confirming re-probe)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from suite.truth import Observation, Seen, TruthTable
from suite.verdicts import Rules, evaluate, judge

C, B, U = Seen.CONNECTED, Seen.BLOCKED, Seen.UNKNOWN


class FakeClock:
    """Each probe costs one second; sleeping advances the clock too. No real waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def probes(seq: list[Seen], clock: FakeClock) -> Iterator[Observation]:
    for i, seen in enumerate(itertools.chain(seq, itertools.repeat(seq[-1]))):
        clock.now += 1
        yield Observation(seen, f"probe {i}")


def verdict(expect: bool, seq: list[Seen], timeout: float = 30) -> tuple[Observation, int]:
    clock = FakeClock()
    it = probes(seq, clock)
    count = 0

    def probe() -> Observation:
        nonlocal count
        count += 1
        return next(it)

    obs = judge(expect, probe, Rules(timeout=timeout, interval=1), clock=clock, sleep=clock.sleep)
    return obs, count


def test_positive_needs_three_consecutive_successes() -> None:
    obs, count = verdict(True, [C, C, C])
    assert obs.seen is C and count == 3
    obs, count = verdict(True, [C, B, C, C, C])
    assert obs.seen is C and count == 5, "a failure resets the streak"


def test_flapping_positive_is_not_connected() -> None:
    obs, _ = verdict(True, [C, C, B] * 20, timeout=20)
    assert obs.seen is B and "no 3 consecutive connected" in obs.detail


def test_negative_needs_a_confirming_reprobe() -> None:
    obs, count = verdict(False, [B, B])
    assert obs.seen is B and count == 2
    obs, count = verdict(False, [B, C, B, B])
    assert obs.seen is B and count == 4, "one blocked probe after a success is not yet a verdict"


def test_negative_that_keeps_connecting_reads_connected() -> None:
    obs, _ = verdict(False, [C], timeout=10)
    assert obs.seen is C


def test_a_failing_probe_is_unknown_not_blocked() -> None:
    obs, _ = verdict(False, [U], timeout=10)
    assert obs.seen is U, "a probe that cannot ask must never confirm isolation"
    obs, _ = verdict(True, [C, C, U], timeout=10)
    assert obs.seen is U


def table() -> TruthTable:
    return TruthTable.build("t", ["a", "b"], ["a", "b", "c"],
                            {(c, t): t != "c" for c in "ab" for t in "abc"})


def test_table_without_positive_controls_is_refused() -> None:
    with pytest.raises(ValueError, match="positive controls"):
        TruthTable.build("t", ["a"], ["b"], {("a", "b"): False})


def test_table_skips_self_cells_and_renders_expected_observed_diff() -> None:
    t = table()
    assert ("a", "a") not in t.expected and len(t.expected) == 4
    t.record(("a", "b"), Observation(C, "10.0.0.1:1"))
    t.record(("b", "a"), Observation(B, "timeout"))
    t.record(("a", "c"), Observation(B))
    t.record(("b", "c"), Observation(C, "leak"))
    assert t.mismatches() == [("b", "a"), ("b", "c")]
    text = t.render()
    for part in ("expected", "observed", "diff", "b -> c: expected blocked, observed connected: leak",
                 "b -> a: expected connects, observed blocked: timeout", "2 of 4 cells differ"):
        assert part in text, text


def test_unprobed_cell_is_a_mismatch() -> None:
    t = table()
    assert set(t.mismatches()) == set(t.expected)
    assert "?" in t.render()


def test_evaluate_judges_every_cell() -> None:
    t = table()
    answers = {("a", "b"): C, ("b", "a"): C, ("a", "c"): B, ("b", "c"): B}
    evaluate(t, lambda cell: Observation(answers[cell]), Rules(timeout=5, interval=0), workers=3,
             sleep=lambda s: None)
    assert not t.mismatches(), t.render()
    assert "all 4 cells as expected (2 positive controls)" in t.render()
