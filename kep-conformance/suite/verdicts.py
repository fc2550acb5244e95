"""When a probed cell has a verdict.

A positive cell is "connects" only after `successes` consecutive successful
probes (Gateway API's rule against a lucky first packet); a negative cell is
"blocked" only after a confirming re-probe, so one lost packet never reads as
isolation. Until the streak is reached the cell is probed again, up to a
convergence deadline (policy and Service changes take effect eventually); at
the deadline the cell reads as the opposite of what it expected, with what
the probes saw. Clock and sleep are parameters so the rules are tested
without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from suite.truth import Cell, Observation, Seen, TruthTable


@dataclass(frozen=True)
class Rules:
    successes: int = 3
    confirmations: int = 2  # the probe and its confirming re-probe
    timeout: float = 60.0
    interval: float = 1.0

    def __post_init__(self) -> None:
        if self.successes < 1 or self.confirmations < 1:
            raise ValueError("successes and confirmations must be at least 1")


Probe = Callable[[], Observation]


def judge(expect: bool, probe: Probe, rules: Rules,
          clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Observation:
    """Probe until the expected streak is seen or the deadline passes; return the verdict."""
    deadline = clock() + rules.timeout
    need = rules.successes if expect else rules.confirmations
    wanted = Seen.CONNECTED if expect else Seen.BLOCKED
    streak, probes, last = 0, 0, Observation(Seen.UNKNOWN, "never probed")
    seen_counts = {s: 0 for s in Seen}
    while True:
        last = probe()
        probes += 1
        seen_counts[last.seen] += 1
        streak = streak + 1 if last.seen is wanted else 0
        if streak >= need:
            return Observation(wanted, last.detail)
        if clock() >= deadline:
            break
        sleep(rules.interval)
    tally = ", ".join(f"{n} {s.name.lower()}" for s, n in seen_counts.items() if n)
    summary = f"no {need} consecutive {wanted.name.lower()} in {probes} probes ({tally}); last: {last.detail}"
    # A failed probe says nothing about the path: the verdict stays unknown.
    return Observation(Seen.UNKNOWN if last.seen is Seen.UNKNOWN else _other(wanted), summary)


def _other(seen: Seen) -> Seen:
    return Seen.BLOCKED if seen is Seen.CONNECTED else Seen.CONNECTED


def evaluate(table: TruthTable, probe_cell: Callable[[Cell], Observation], rules: Rules,
             workers: int = 8, sleep: Callable[[float], None] = time.sleep) -> TruthTable:
    """Judge every cell of `table`, several at once (a blocked probe waits out its timeout)."""
    def one(cell: Cell) -> tuple[Cell, Observation]:
        return cell, judge(table.expected[cell], lambda: probe_cell(cell), rules, sleep=sleep)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for cell, observation in pool.map(one, sorted(table.expected)):
            table.record(cell, observation)
    return table
