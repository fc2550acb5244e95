"""The suite's flags (Gateway API's names where Gateway has one) and their
validation into one immutable value the plugin and the fixtures read."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from suite.binding import Binding, impossible_features
from suite.profiles import FEATURES, PROFILES, parse_names
from suite.selection import Selection, supported_features

DEFAULT_PROBE_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.56"
TRANSPORTS = ("proxy", "exec")


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def add(parser: pytest.Parser) -> None:
    g = parser.getgroup("kep-conformance")
    g.addoption("--kubeconfig", default=os.environ.get("KUBECONFIG"),
                help="kubeconfig of the cluster under test (default: $KUBECONFIG)")
    g.addoption("--implementation", type=Path,
                help="the options file: the implementation's identity and API binding (implementations/*.yaml)")
    g.addoption("--conformance-profiles", default="",
                help=f"comma-separated profiles to run (default: all of {', '.join(PROFILES)})")
    g.addoption("--supported-features", default="", help="Extended features supported, added to the options file's")
    g.addoption("--exempt-features", default="", help="features not to test (Core ones then count as skipped)")
    g.addoption("--all-features", action="store_true", help="declare every Extended feature supported")
    g.addoption("--skip-tests", default="", help="comma-separated test names to skip (counted as skipped)")
    g.addoption("--run-test", default=None, help="run only this test (the rest count as skipped)")
    g.addoption("--skip-provisional-tests", action="store_true", help="skip provisional tests (counted as skipped)")
    g.addoption("--report-output", type=Path, help="write the ConformanceReport (YAML) here; JUnit and the "
                "truth tables go beside it")
    g.addoption("--junit-output", type=Path, help="JUnit XML (default: the report's path with .xml)")
    g.addoption("--cleanup-test-resources", type=_bool, default=True,
                help="delete what the tests create (default true; false keeps it for debugging)")
    g.addoption("--namespace-labels", default="", help="k=v,... labels for every namespace the suite creates")
    g.addoption("--mode", default="default", help="the implementation's operating mode, as the report states it")
    g.addoption("--allow-disruptive", action="store_true",
                help="run tests that change cluster-wide state (delete the `default` PodNetwork)")
    g.addoption("--probe-transport", choices=TRANSPORTS, default="proxy",
                help="reach probe pods through the apiserver pod proxy (default) or pods/exec")
    g.addoption("--probe-image", default=DEFAULT_PROBE_IMAGE, help="agnhost image for probe pods (a mirror)")
    g.addoption("--converge-timeout", type=float, default=60.0,
                help="seconds the implementation may take to converge (default 60)")
    g.addoption("--pod-ready-timeout", type=float, default=180.0,
                help="seconds a probe pod may take to become Ready (default 180)")


@dataclass(frozen=True)
class RunOptions:
    kubeconfig: str | None
    binding: Binding | None
    selection: Selection
    report: Path | None
    junit: Path | None
    tables: Path | None
    cleanup: bool
    namespace_labels: dict[str, str]
    mode: str
    transport: str
    probe_image: str
    converge_timeout: float
    pod_ready_timeout: float


def _labels(text: str) -> dict[str, str]:
    out = {}
    for pair in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--namespace-labels: expected key=value, got {pair!r}")
        out[key] = value
    return out


def read(cfg: pytest.Config, binding: Binding | None) -> RunOptions:
    """Every flag, validated; a bad one is a usage error naming it."""
    try:
        profiles = parse_names(cfg.getoption("--conformance-profiles"), dict(PROFILES), "--conformance-profiles")
        flagged = parse_names(cfg.getoption("--supported-features"), dict(FEATURES), "--supported-features")
        exempt = parse_names(cfg.getoption("--exempt-features"), dict(FEATURES), "--exempt-features")
        declared = parse_names(",".join(binding.supported_features if binding else ()), dict(FEATURES),
                               "supportedFeatures (options file)")
        labels = _labels(cfg.getoption("--namespace-labels"))
    except ValueError as err:
        raise pytest.UsageError(str(err)) from err
    selection = Selection(
        profiles=frozenset(profiles or PROFILES),
        supported=supported_features(declared, flagged, cfg.getoption("--all-features"), exempt),
        exempt=frozenset(exempt),
        impossible=impossible_features(binding) if binding else {},
        skip_tests=frozenset(t.strip() for t in cfg.getoption("--skip-tests").split(",") if t.strip()),
        run_test=cfg.getoption("--run-test"),
        skip_provisional=cfg.getoption("--skip-provisional-tests"),
        allow_disruptive=cfg.getoption("--allow-disruptive"),
    )
    report = cfg.getoption("--report-output")
    junit = cfg.getoption("--junit-output") or (report.with_suffix(".xml") if report else None)
    tables = report.with_name(report.stem + "-truth-tables.txt") if report else None
    return RunOptions(
        kubeconfig=cfg.getoption("--kubeconfig"), binding=binding, selection=selection, report=report,
        junit=junit, tables=tables, cleanup=cfg.getoption("--cleanup-test-resources"),
        namespace_labels=labels, mode=cfg.getoption("--mode"), transport=cfg.getoption("--probe-transport"),
        probe_image=cfg.getoption("--probe-image"), converge_timeout=cfg.getoption("--converge-timeout"),
        pod_ready_timeout=cfg.getoption("--pod-ready-timeout"),
    )
