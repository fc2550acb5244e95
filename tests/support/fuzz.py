"""How many cases each fuzz target ran, and with what outcome.

Every fuzz test counts each generated case here (shrinking included: it is a
case the process answered). tests/fuzz/conftest.py prints the counts at the
end of the session and writes them to build/fuzz-counts.json.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any


class Tally:
    def __init__(self) -> None:
        self.outcomes: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.tests: dict[str, str] = {}

    def count(self, target: str, outcome: str) -> None:
        self.outcomes[target][outcome] += 1

    def cases(self, target: str) -> int:
        return sum(self.outcomes[target].values())

    def as_json(self) -> dict[str, Any]:
        return {
            "targets": {t: {"cases": self.cases(t), "outcomes": dict(sorted(c.items()))}
                        for t, c in sorted(self.outcomes.items())},
            "tests": dict(sorted(self.tests.items())),
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")

    def lines(self) -> list[str]:
        out = []
        for target, counts in sorted(self.outcomes.items()):
            top = ", ".join(f"{k} {v}" for k, v in counts.most_common(6))
            more = f", +{len(counts) - 6} more kinds" if len(counts) > 6 else ""
            out.append(f"{target}: {self.cases(target)} cases ({top}{more})")
        return out


TALLY = Tally()
