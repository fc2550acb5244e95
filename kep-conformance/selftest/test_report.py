"""The ledger, the ConformanceReport and the JUnit built from it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import yaml

from suite import junit, report
from suite.ledger import NOT_RUN, Ledger, Result
from suite.profiles import API, ATTACHMENT, POLICY, PROFILES
from suite.selection import Selection, TestInfo, decide

TESTS = [
    TestInfo("test_a", ("PodNetworkAPI",)),
    TestInfo("test_b", ("PodNetworkStatus",)),
    TestInfo("test_c", ("PodNetworkAttachment",)),
    TestInfo("test_d", ("AttachmentReachability",)),
    TestInfo("test_e", ("DualStack",)),
    TestInfo("test_p", ("NetworkPolicyIngress",)),
]
SUPPORTED = frozenset({"PodNetworkAttachment"})


def ledger(sel: Selection | None = None, cases: int = 1) -> Ledger:
    sel = sel or Selection(profiles=frozenset(PROFILES), supported=SUPPORTED)
    made = Ledger()
    for test in TESTS:
        for i in range(cases):
            made.enter(test, f"x.py::{test.name}[{i}]", decide(test, sel))
    return made


def run(made: Ledger, outcome: str = "passed") -> None:
    for name, cases in made.cases.items():
        for nodeid in cases:
            if made.decisions[name].kind.value == "run":
                made.record(nodeid, "setup", "passed")
                made.record(nodeid, "call", outcome)
                made.record(nodeid, "teardown", "passed")


def build(made: Ledger, supported: frozenset[str] = SUPPORTED) -> dict[str, Any]:
    info = report.RunInfo(implementation={"organization": "o", "project": "p", "url": "u", "version": "v",
                                          "contact": ["c"]}, api_binding={}, mode="default",
                          profiles=tuple(PROFILES), supported=supported, cluster="c")
    built = report.build(made, info)
    assert yaml.safe_load(report.dump(built)) == built
    return built


def profile(built: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in built["profiles"] if p["name"] == name)
    return found


def all_results(built: dict[str, Any]) -> list[str]:
    return [p[level]["result"] for p in built["profiles"] for level in ("core", "extended") if level in p]


def test_a_run_with_everything_deselected_reports_no_success() -> None:
    made = ledger()
    for cases in list(made.cases.values()):
        for nodeid in list(cases):
            made.deselect(nodeid)
    built = build(made)
    assert "success" not in all_results(built)
    api = profile(built, API)
    assert api["core"]["statistics"] == {"Passed": 0, "Failed": 0, "Skipped": 2}
    assert api["core"]["skippedTests"] == ["test_a", "test_b"]
    assert not made.ran_anything()


def test_a_session_that_never_ran_its_tests_reports_them_skipped() -> None:
    made = ledger()
    assert made.result("test_a").reason == NOT_RUN
    assert "success" not in all_results(build(made))


def test_all_passing_is_success_and_unsupported_stays_out() -> None:
    made = ledger()
    run(made)
    built = build(made)
    api = profile(built, API)
    assert api["core"]["result"] == "success" and api["extended"]["result"] == "success"
    assert api["extended"]["supportedFeatures"] == ["PodNetworkAttachment"]
    att = profile(built, ATTACHMENT)
    assert att["core"]["result"] == "success"
    assert att["extended"]["statistics"] == {"Passed": 0, "Failed": 0, "Skipped": 0}, "DualStack is unsupported"
    assert att["extended"]["result"] == "partial", "a level where nothing ran is never success"
    assert "DualStack" in att["extended"]["unsupportedFeatures"]
    assert built["succeededProvisionalTests"] == ["test_p"]


def test_one_failed_case_fails_the_test_and_a_skipped_case_makes_it_partial() -> None:
    made = ledger(cases=2)
    run(made)
    made.record("x.py::test_a[1]", "call", "failed", "boom")
    made.cases["test_b"]["x.py::test_b[0]"].result = Result.SKIPPED  # as a skip inside the test leaves it
    built = build(made)
    core = profile(built, API)["core"]
    assert core["result"] == "failure" and core["failedTests"] == ["test_a"]
    assert core["skippedTests"] == ["test_b"]
    assert made.result("test_a").result is Result.FAILED and made.result("test_a").reason == "boom"


def test_teardown_failure_wins_over_a_passed_call() -> None:
    made = ledger()
    made.record("x.py::test_a[0]", "call", "passed")
    made.record("x.py::test_a[0]", "teardown", "failed", "cleanup broke")
    assert made.result("test_a").result is Result.FAILED


def test_profiles_not_selected_are_absent() -> None:
    made = ledger(Selection(profiles=frozenset({POLICY}), supported=SUPPORTED))
    run(made)
    info = report.RunInfo(implementation={}, api_binding={}, mode="default", profiles=(POLICY,),
                          supported=SUPPORTED, cluster="c")
    built = report.build(made, info)
    assert [p["name"] for p in built["profiles"]] == [POLICY]


def test_junit_matches_the_report() -> None:
    made = ledger(cases=2)
    run(made)
    made.record("x.py::test_b[1]", "call", "failed", "line one\nline two")
    made.deselect("x.py::test_d[0]")
    root = junit.build(made, tuple(PROFILES))
    text = junit.dump(root)
    parsed = ET.fromstring(text.split("?>", 1)[1])
    assert parsed.get("tests") == str(sum(1 for s in parsed for c in s if c.tag == "testcase"))
    api = next(s for s in parsed if s.get("name") == API)
    assert api.get("failures") == "1"
    failure = api.find("testcase[@name='x.py::test_b[1]']/failure")
    assert failure is not None and failure.get("message") == "line one" and "line two" in (failure.text or "")
    att = next(s for s in parsed if s.get("name") == ATTACHMENT)
    assert att.get("skipped") == "1"
    names = {c.get("name") for s in parsed for c in s if c.tag == "testcase"}
    assert not any("test_e" in str(n) for n in names), "unsupported tests stay out of JUnit too"


def test_duplicate_test_names_are_refused() -> None:
    made = Ledger()
    made.enter(TestInfo("test_x", ("PodNetworkAPI",), where="a.py"), "a.py::test_x",
               decide(TESTS[0], Selection(profiles=frozenset(PROFILES), supported=SUPPORTED)))
    try:
        made.enter(TestInfo("test_x", ("PodNetworkAPI",), where="b.py"), "b.py::test_x",
                   decide(TESTS[0], Selection(profiles=frozenset(PROFILES), supported=SUPPORTED)))
    except ValueError as err:
        assert "test_x" in str(err)
    else:
        raise AssertionError("two tests of one name were accepted")
