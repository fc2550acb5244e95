"""Truth tables of connectivity, in the manner of the upstream NetworkPolicy e2e.

A table has clients (rows) and targets (columns); each probed cell expects
"connects" or "blocked". It must hold positive controls, cells expected to
connect, so a dead network fails the table instead of passing an isolation
check. Rendering prints the expected and observed grids and their
difference, and lists every mismatch with what the probe saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

Cell = tuple[str, str]  # (client, target)


class Seen(str, Enum):
    CONNECTED = "."
    BLOCKED = "X"
    UNKNOWN = "?"  # the probe itself failed: nothing is known about the path


@dataclass(frozen=True)
class Observation:
    seen: Seen
    detail: str = ""


@dataclass
class TruthTable:
    title: str
    clients: list[str]
    targets: list[str]
    expected: dict[Cell, bool]
    observed: dict[Cell, Observation] = field(default_factory=dict)

    def __post_init__(self) -> None:
        stray = [c for c in self.expected if c[0] not in self.clients or c[1] not in self.targets]
        if stray:
            raise ValueError(f"{self.title}: cells outside the table: {stray}")
        if not any(self.expected.values()):
            raise ValueError(f"{self.title}: a truth table needs positive controls (cells expected to connect), "
                             "or a dead network would pass it")

    @classmethod
    def build(cls, title: str, clients: Iterable[str], targets: Iterable[str],
              expect: Mapping[Cell, bool], skip_self: bool = True) -> TruthTable:
        rows, cols = list(clients), list(targets)
        cells = {(c, t): bool(expect[(c, t)]) for c in rows for t in cols
                 if not (skip_self and c == t) and (c, t) in expect}
        return cls(title, rows, cols, cells)

    def record(self, cell: Cell, observation: Observation) -> None:
        if cell not in self.expected:
            raise KeyError(f"{self.title}: {cell} is not a probed cell")
        self.observed[cell] = observation

    def verdict(self, cell: Cell) -> bool | None:
        seen = self.observed.get(cell, Observation(Seen.UNKNOWN)).seen
        return None if seen is Seen.UNKNOWN else seen is Seen.CONNECTED

    def mismatches(self) -> list[Cell]:
        return [c for c, want in self.expected.items() if self.verdict(c) is not want]

    def positives(self) -> int:
        return sum(self.expected.values())

    def _grid(self, mark: dict[Cell, str]) -> list[str]:
        width = max([len(t) for t in self.targets] + [len(c) for c in self.clients] + [1])
        lines = [" " * width + " " + " ".join(t.rjust(width) for t in self.targets)]
        for c in self.clients:
            lines.append(c.ljust(width) + " " + " ".join(mark.get((c, t), "-").rjust(width) for t in self.targets))
        return lines

    def render(self) -> str:
        expected = {c: (Seen.CONNECTED if want else Seen.BLOCKED).value for c, want in self.expected.items()}
        observed = {c: self.observed.get(c, Observation(Seen.UNKNOWN)).seen.value for c in self.expected}
        diff = {c: ("X" if c in self.mismatches() else ".") for c in self.expected}
        out = [f"== {self.title}",
               f"expected ({Seen.CONNECTED.value} connects, {Seen.BLOCKED.value} blocked, - not probed):",
               *self._grid(expected),
               f"observed ({Seen.UNKNOWN.value} the probe failed):", *self._grid(observed),
               "diff (X differs):", *self._grid(diff)]
        wrong = self.mismatches()
        if wrong:
            out.append(f"{len(wrong)} of {len(self.expected)} cells differ:")
            for cell in wrong:
                obs = self.observed.get(cell, Observation(Seen.UNKNOWN, "never probed"))
                want = "connects" if self.expected[cell] else "blocked"
                out.append(f"  {cell[0]} -> {cell[1]}: expected {want}, observed {obs.seen.name.lower()}"
                           f"{': ' + obs.detail if obs.detail else ''}")
        else:
            out.append(f"all {len(self.expected)} cells as expected ({self.positives()} positive controls)")
        return "\n".join(out)
