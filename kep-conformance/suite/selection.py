"""Which tests run, which are skipped and which stay out of the statistics.

Pure: the pytest plugin hands in what it collected and the flags; this
decides. The rules are Gateway API's:

- a test of a profile that was not selected is not part of the run at all;
- a test needing an Extended feature the implementation does not support is
  "not supported": it does not run and stays out of the statistics;
- every other test of a selected profile counts. If it does not run (named by
  --skip-tests, outside --run-test, provisional under --skip-provisional-tests,
  disruptive without --allow-disruptive, a Core feature exempted or one the
  API binding cannot express) it counts as Skipped, and the profile is partial.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from suite.profiles import FEATURES, PROFILES, Support, is_extended, profile_of


@dataclass(frozen=True)
class TestInfo:
    """One conformance test: a test function; its parametrized cases are its subtests."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    features: tuple[str, ...]
    provisional: bool = False
    disruptive: bool = False
    where: str = ""  # the module, so two tests of one name are told apart

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError(f"{self.name}: a conformance test needs @pytest.mark.feature(...)")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ValueError(f"{self.name}: unknown feature(s) {', '.join(unknown)}")

    @property
    def profile(self) -> str:
        return profile_of(self.features)

    @property
    def extended(self) -> bool:
        return is_extended(self.features)

    @property
    def is_provisional(self) -> bool:
        return self.provisional or PROFILES[self.profile].provisional


class Kind(str, Enum):
    RUN = "run"
    SKIP = "skip"                  # counts as Skipped
    UNSUPPORTED = "unsupported"    # out of the statistics
    NOT_SELECTED = "not-selected"  # its profile is not part of the run


@dataclass(frozen=True)
class Decision:
    kind: Kind
    reason: str = ""


@dataclass(frozen=True)
class Selection:
    profiles: frozenset[str]
    supported: frozenset[str]
    exempt: frozenset[str] = frozenset()
    # Features the API binding cannot express (e.g. no attachment object), with why.
    impossible: Mapping[str, str] = field(default_factory=dict)
    skip_tests: frozenset[str] = frozenset()
    run_test: str | None = None
    skip_provisional: bool = False
    allow_disruptive: bool = False


def supported_features(declared: Iterable[str], flagged: Iterable[str], all_features: bool,
                       exempt: Iterable[str]) -> frozenset[str]:
    """The Extended features to test: declared ones (or all), minus the exempted."""
    extended = {n for n, f in FEATURES.items() if f.support is Support.EXTENDED}
    chosen = set(extended) if all_features else (set(declared) | set(flagged)) & extended
    return frozenset(chosen - set(exempt))


def decide(test: TestInfo, sel: Selection) -> Decision:
    if test.profile not in sel.profiles:
        return Decision(Kind.NOT_SELECTED, f"profile {test.profile} is not selected")
    for name in test.features:
        if FEATURES[name].support is not Support.EXTENDED:
            continue
        if name in sel.impossible:
            return Decision(Kind.UNSUPPORTED, f"Extended feature {name}: {sel.impossible[name]}")
        if name not in sel.supported:
            return Decision(Kind.UNSUPPORTED, f"Extended feature {name} is not supported by the implementation")
    for name in test.features:
        if FEATURES[name].support is Support.CORE and name in sel.impossible:
            return Decision(Kind.SKIP, f"Core feature {name}: {sel.impossible[name]}")
        if FEATURES[name].support is Support.CORE and name in sel.exempt:
            return Decision(Kind.SKIP, f"Core feature {name} is exempted (--exempt-features)")
    if sel.run_test is not None and test.name != sel.run_test:
        return Decision(Kind.SKIP, f"not selected: --run-test {sel.run_test}")
    if test.name in sel.skip_tests:
        return Decision(Kind.SKIP, "named by --skip-tests")
    if test.is_provisional and sel.skip_provisional:
        return Decision(Kind.SKIP, "provisional test (--skip-provisional-tests)")
    if test.disruptive and not sel.allow_disruptive:
        return Decision(Kind.SKIP, "disruptive: changes cluster-wide state; run with --allow-disruptive")
    return Decision(Kind.RUN)


def check_names(sel: Selection, known_tests: Iterable[str]) -> None:
    """Refuse test names that do not exist, so a typo is not a silently passing run."""
    known = set(known_tests)
    wanted = set(sel.skip_tests) | ({sel.run_test} if sel.run_test else set())
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(f"--skip-tests/--run-test: no such test {', '.join(unknown)}")
