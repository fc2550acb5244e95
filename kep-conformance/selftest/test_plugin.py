"""The suite's pytest plugin, run as users run it (the launcher, a subprocess),
without a cluster: only runs where no conformance test executes."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

SUITE = Path(__file__).resolve().parents[1]
OPTIONS = SUITE / "implementations" / "multinet.yaml"


def suite(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return subprocess.run([sys.executable, str(SUITE / "kep-conformance"), *args], capture_output=True, text=True,
                          env=env, timeout=300)


def results(report: dict[str, Any]) -> list[str]:
    return [p[level]["result"] for p in report["profiles"] for level in ("core", "extended") if level in p]


def test_every_test_deselected_reports_no_success(tmp_path: Path) -> None:
    out = tmp_path / "r" / "report.yaml"
    run = suite("--implementation", str(OPTIONS), "--all-features", "-k", "no_test_is_named_this",
                "--report-output", str(out))
    assert run.returncode == 5, run.stdout[-2000:] + run.stderr[-2000:]  # pytest: no tests ran
    report = yaml.safe_load(out.read_text())
    assert len(report["profiles"]) == 5
    assert "success" not in results(report), results(report)
    counted = sum(p[level]["statistics"]["Skipped"] for p in report["profiles"]
                  for level in ("core", "extended") if level in p)
    assert counted > 0 and all(p[level]["statistics"]["Passed"] == 0 for p in report["profiles"]
                               for level in ("core", "extended") if level in p)
    assert "succeededProvisionalTests" not in report
    junit = ET.parse(out.with_suffix(".xml")).getroot()
    assert junit.get("tests") == junit.get("skipped") and int(junit.get("tests") or 0) >= counted
    assert out.with_name("report-truth-tables.txt").read_text().startswith("no truth table")
    for key in ("organization", "project", "url", "version", "contact"):
        assert report["implementation"][key]


def test_only_declared_features_are_listed_supported(tmp_path: Path) -> None:
    out = tmp_path / "report.yaml"
    suite("--implementation", str(OPTIONS), "--exempt-features", "DualStack", "--collect-only",
          "--report-output", str(out))
    report = yaml.safe_load(out.read_text())
    att = next(p for p in report["profiles"] if p["name"] == "MULTINETWORK-ATTACHMENT")
    assert "DualStack" in att["extended"]["unsupportedFeatures"]
    assert "OverlappingSubnets" in att["extended"]["supportedFeatures"]
    assert "success" not in results(report), "a collect-only run executed nothing"


def test_profiles_select_what_the_report_lists(tmp_path: Path) -> None:
    out = tmp_path / "report.yaml"
    suite("--implementation", str(OPTIONS), "--conformance-profiles", "MULTINETWORK-POLICY", "--collect-only",
          "--report-output", str(out))
    report = yaml.safe_load(out.read_text())
    assert [p["name"] for p in report["profiles"]] == ["MULTINETWORK-POLICY"]


@pytest.mark.parametrize("args,error", [
    ((), "--implementation OPTIONS.yaml is required"),
    (("--implementation", str(OPTIONS), str(SUITE / "api")), "run the whole suite"),
    (("--implementation", str(OPTIONS), "--run-test", "test_nope"), "no such test test_nope"),
    (("--implementation", str(OPTIONS), "--supported-features", "Teleport"), "unknown Teleport"),
    (("--implementation", str(OPTIONS), "--conformance-profiles", "MULTINETWORK-X"), "unknown MULTINETWORK-X"),
    (("--implementation", str(OPTIONS), "--namespace-labels", "oops"), "expected key=value"),
])
def test_bad_invocations_are_refused(args: tuple[str, ...], error: str) -> None:
    run = suite(*args, "--collect-only")
    assert run.returncode == 4, run.stdout[-2000:] + run.stderr[-2000:]
    assert error in run.stderr + run.stdout


def test_bad_options_file_is_refused_naming_the_field(tmp_path: Path) -> None:
    data = yaml.safe_load(OPTIONS.read_text())
    del data["implementation"]["contact"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    run = suite("--implementation", str(bad), "--collect-only")
    assert run.returncode == 4 and "implementation.contact: required" in run.stderr + run.stdout


def test_readme_names_every_feature_and_states_the_counts(tmp_path: Path) -> None:
    import re

    from suite.profiles import FEATURES

    readme = (SUITE / "README.md").read_text()
    missing = [f for f in FEATURES if f"`{f}`" not in readme]
    assert not missing, f"README.md does not describe {missing}"
    out = tmp_path / "report.yaml"
    suite("--implementation", str(OPTIONS), "--all-features", "--collect-only", "--report-output", str(out))
    report = yaml.safe_load(out.read_text())
    stated = " ".join(readme.split())
    for p in report["profiles"]:
        core, ext = (sum(p[level]["statistics"].values()) for level in ("core", "extended"))
        short = p["name"].removeprefix("MULTINETWORK-")
        assert re.search(rf"\b{short} {core} (Core )?\+ {ext}\b", stated), f"README: {short} {core} + {ext}"
