"""hack/mutation's judgement, without a cluster: JUnit read as the suite writes
it, a fault caught only by a test that passed in the clean run, refusals."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]

JUNIT = """<?xml version='1.0' encoding='utf-8'?>
<testsuites name="kep-conformance" tests="4" failures="2" skipped="1">
  <testsuite name="MULTINETWORK-API">
    <testcase classname="MULTINETWORK-API.Core" name="test_pod_waits_for_a_missing_network" />
    <testcase classname="MULTINETWORK-API.Core" name="test_ready_follows_each_spec_change_with_its_generation">
      <failure message="observedGeneration 0">observedGeneration 0, want 2</failure>
    </testcase>
  </testsuite>
  <testsuite name="MULTINETWORK-ATTACHMENT">
    <testcase classname="MULTINETWORK-ATTACHMENT.Core" name="test_udp_reaches_every_pod_of_the_network">
      <skipped message="one node" />
    </testcase>
    <testcase classname="MULTINETWORK-ATTACHMENT.Extended" name="test_is_default_gw4_moves_the_default_route">
      <failure message="no route" />
    </testcase>
  </testsuite>
</testsuites>
"""


def lane() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_lane", ROOT / "hack" / "mutation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_junit_cases_are_named_by_profile_and_test(tmp_path: Path) -> None:
    path = tmp_path / "report.xml"
    path.write_text(JUNIT)
    passed, failed, skipped = lane().junit_cases(path)
    assert passed == ["MULTINETWORK-API/test_pod_waits_for_a_missing_network"]
    assert failed == ["MULTINETWORK-API/test_ready_follows_each_spec_change_with_its_generation",
                      "MULTINETWORK-ATTACHMENT/test_is_default_gw4_moves_the_default_route"]
    assert skipped == ["MULTINETWORK-ATTACHMENT/test_udp_reaches_every_pod_of_the_network"]


def test_caught_only_by_a_test_that_passed_clean() -> None:
    m = lane()
    judge = m.Lane(argparse.Namespace(output=Path("unused"))).judge
    clean = m.Run(m.CLEAN, passed=["P/a", "P/b"], skipped=["P/c"])
    judge(clean, None)
    assert clean.outcome == "clean-partial"
    caught = m.Run("duplicate-address", passed=["P/a"], failed=["P/b", "P/c"])
    judge(caught, clean)
    assert (caught.outcome, caught.caught_by) == ("caught", ["P/b"])
    missed = m.Run("cross-node-drop", passed=["P/a", "P/b"], failed=["P/c"])  # P/c never passed clean
    judge(missed, clean)
    assert (missed.outcome, missed.caught_by) == ("missed", [])
    assert "MISSED" in m.table([clean, caught, missed])


def test_a_run_that_did_not_finish_is_never_caught() -> None:
    m = lane()
    clean = m.Run(m.CLEAN, passed=["P/a"])
    run = m.Run("gate-never-lifted", outcome="timeout")
    m.Lane(argparse.Namespace(output=Path("unused"))).judge(run, clean)
    assert run.outcome == "timeout" and run.caught_by == []


def test_unknown_fault_is_refused_before_any_cluster() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "hack" / "mutation.py"), "--faults", "duplicate-address,nope"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "nope" in done.stderr and "duplicate-address," not in done.stderr.split("known:")[0]


def test_first_catch_skips_what_failed_clean_and_stops_at_the_first_failure() -> None:
    m = lane()
    clean = m.Run(m.CLEAN, failed=["MULTINETWORK-API/api/test_api_status.py::test_ready_follows_a_change[x]",
                                   "MULTINETWORK-API/api/test_api_status.py::test_ready_follows_a_change[y]"])
    assert m.Lane(argparse.Namespace(output=Path("unused"), first_catch=False)).first_catch(clean) == []
    fast = m.Lane(argparse.Namespace(output=Path("unused"), first_catch=True))
    assert fast.first_catch(None) == []  # the clean run itself always runs whole
    assert fast.first_catch(clean) == ["--maxfail=1", "--skip-tests", "test_ready_follows_a_change"]
