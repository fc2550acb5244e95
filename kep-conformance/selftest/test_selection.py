"""Which tests run, count as skipped, or stay out of the statistics."""

from __future__ import annotations

import pytest

from suite.profiles import API, FEATURES, POLICY, PROFILES, Support
from suite.selection import Kind, Selection, TestInfo, check_names, decide, supported_features

CORE = TestInfo("test_core", ("PodNetworkAPI",))
EXTENDED = TestInfo("test_ext", ("PodNetworkAttachment",))
CROSS = TestInfo("test_cross", ("AccessThroughAttachment", "PodNetworkAttachment"))
POLICY_TEST = TestInfo("test_pol", ("NetworkPolicyIngress",))
DISRUPTIVE = TestInfo("test_boom", ("DefaultPodNetwork",), disruptive=True)


def sel(**kw: object) -> Selection:
    base: dict[str, object] = {"profiles": frozenset(PROFILES), "supported": frozenset()}
    base.update(kw)
    return Selection(**base)  # type: ignore[arg-type]


def test_every_feature_belongs_to_a_known_profile() -> None:
    for feature in FEATURES.values():
        assert feature.profile in PROFILES
    for profile in PROFILES:
        assert any(f.profile == profile and f.support is Support.CORE for f in FEATURES.values()), \
            f"{profile} has no Core feature"


def test_core_runs_and_unsupported_extended_stays_out() -> None:
    assert decide(CORE, sel()).kind is Kind.RUN
    assert decide(EXTENDED, sel()).kind is Kind.UNSUPPORTED
    assert decide(EXTENDED, sel(supported=frozenset({"PodNetworkAttachment"}))).kind is Kind.RUN


def test_a_test_needs_every_extended_feature_it_names() -> None:
    assert decide(CROSS, sel(supported=frozenset({"AccessThroughAttachment"}))).kind is Kind.UNSUPPORTED
    both = frozenset({"AccessThroughAttachment", "PodNetworkAttachment"})
    assert decide(CROSS, sel(supported=both)).kind is Kind.RUN
    assert CROSS.profile == "MULTINETWORK-ACCESS" and CROSS.extended


def test_profile_not_selected_is_not_part_of_the_run() -> None:
    assert decide(CORE, sel(profiles=frozenset({POLICY}))).kind is Kind.NOT_SELECTED


@pytest.mark.parametrize("change,reason", [
    ({"run_test": "test_other"}, "--run-test"),
    ({"skip_tests": frozenset({"test_core"})}, "--skip-tests"),
    ({"exempt": frozenset({"PodNetworkAPI"})}, "exempted"),
    ({"impossible": {"PodNetworkAPI": "cannot"}}, "cannot"),
])
def test_skips_that_count(change: dict[str, object], reason: str) -> None:
    decision = decide(CORE, sel(**change))
    assert decision.kind is Kind.SKIP and reason in decision.reason


def test_impossible_extended_feature_is_unsupported_even_when_declared() -> None:
    decision = decide(EXTENDED, sel(supported=frozenset({"PodNetworkAttachment"}),
                                    impossible={"PodNetworkAttachment": "no attachment object"}))
    assert decision.kind is Kind.UNSUPPORTED and "no attachment object" in decision.reason


def test_provisional_profile_and_skip_provisional() -> None:
    assert POLICY_TEST.is_provisional and not CORE.is_provisional
    assert decide(POLICY_TEST, sel(skip_provisional=True)).kind is Kind.SKIP
    assert decide(POLICY_TEST, sel()).kind is Kind.RUN


def test_disruptive_needs_the_flag() -> None:
    assert decide(DISRUPTIVE, sel()).kind is Kind.SKIP
    assert decide(DISRUPTIVE, sel(allow_disruptive=True)).kind is Kind.RUN


def test_supported_features_all_and_exempt() -> None:
    extended = {n for n, f in FEATURES.items() if f.support is Support.EXTENDED}
    assert supported_features([], [], True, []) == extended
    assert "DualStack" not in supported_features([], [], True, ["DualStack"])
    assert supported_features(["DualStack"], ["OverlappingSubnets"], False, []) == {"DualStack", "OverlappingSubnets"}
    assert supported_features(["PodNetworkAPI"], [], False, []) == frozenset(), "Core features are not 'supported'"


def test_unknown_test_names_are_refused() -> None:
    with pytest.raises(ValueError, match="test_nope"):
        check_names(sel(skip_tests=frozenset({"test_nope"})), ["test_core"])
    check_names(sel(run_test="test_core"), ["test_core"])


def test_test_info_refuses_missing_or_unknown_features() -> None:
    with pytest.raises(ValueError, match="needs"):
        TestInfo("t", ())
    with pytest.raises(ValueError, match="Nope"):
        TestInfo("t", ("Nope",))
    assert TestInfo("t", ("PodNetworkAPI",)).profile == API
