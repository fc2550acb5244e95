"""What happened to every test: the record the report and JUnit are built from.

Every case (parametrized instance) of every collected test is entered before
anything runs, as "not run". Pytest's reports then move it to Passed, Failed
or Skipped; a deselected case (-k, -m, --deselect) is Skipped; a case the run
never reached (an interrupted session, -x) stays Skipped. So the statistics
always cover the whole selection, whatever ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from suite.selection import Decision, Kind, TestInfo


class Result(str, Enum):
    PASSED = "Passed"
    FAILED = "Failed"
    SKIPPED = "Skipped"


@dataclass
class CaseOutcome:
    result: Result
    reason: str = ""


NOT_RUN = "not run: the session ended before this test"


@dataclass
class Ledger:
    tests: dict[str, TestInfo] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)
    cases: dict[str, dict[str, CaseOutcome]] = field(default_factory=dict)  # test -> nodeid -> outcome
    _owner: dict[str, str] = field(default_factory=dict)  # nodeid -> test

    def enter(self, test: TestInfo, nodeid: str, decision: Decision) -> None:
        known = self.tests.get(test.name)
        if known is not None and known != test:
            raise ValueError(f"two conformance tests are named {test.name}; test names must be unique")
        self.tests[test.name] = test
        self.decisions[test.name] = decision
        skipped = decision.kind is not Kind.RUN
        self.cases.setdefault(test.name, {})[nodeid] = CaseOutcome(
            Result.SKIPPED, decision.reason if skipped else NOT_RUN)
        self._owner[nodeid] = test.name

    def test_of(self, nodeid: str) -> str | None:
        return self._owner.get(nodeid)

    def record(self, nodeid: str, when: str, outcome: str, reason: str = "") -> None:
        """One pytest report: `when` is setup/call/teardown, `outcome` passed/failed/skipped."""
        name = self._owner.get(nodeid)
        if name is None:
            return
        case = self.cases[name][nodeid]
        if case.result is Result.FAILED:
            return  # a failure anywhere (setup, call, teardown) wins
        if outcome == "failed":
            self.cases[name][nodeid] = CaseOutcome(Result.FAILED, reason)
        elif outcome == "skipped":
            self.cases[name][nodeid] = CaseOutcome(Result.SKIPPED, reason)
        elif outcome == "passed" and when == "call":
            self.cases[name][nodeid] = CaseOutcome(Result.PASSED)

    def deselect(self, nodeid: str) -> None:
        name = self._owner.get(nodeid)
        if name is not None:
            self.cases[name][nodeid] = CaseOutcome(Result.SKIPPED, "deselected (-k, -m or --deselect)")

    def counted(self, name: str) -> bool:
        """Whether the test belongs in the statistics (its profile selected, its features supported)."""
        return self.decisions[name].kind in (Kind.RUN, Kind.SKIP)

    def result(self, name: str) -> CaseOutcome:
        """The test's verdict over its cases: any failure fails it; else any skip skips it."""
        outcomes = list(self.cases[name].values())
        for wanted in (Result.FAILED, Result.SKIPPED):
            for o in outcomes:
                if o.result is wanted:
                    return o
        return CaseOutcome(Result.PASSED)

    def ran_anything(self) -> bool:
        return any(o.result is not Result.SKIPPED for cases in self.cases.values() for o in cases.values())
