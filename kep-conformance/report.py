"""The conformance report: YAML, one profile per support level, in the manner
of Gateway API's ConformanceReport."""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import yaml

from features import FEATURES, Support


@dataclass
class Outcomes:
    # feature -> test id -> "Passed" | "Failed" | "Skipped"
    results: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))

    def add(self, feature: str, test: str, outcome: str) -> None:
        previous = self.results[feature].get(test)
        # setup/call/teardown all report: a failure anywhere wins
        if previous != "Failed":
            self.results[feature][test] = outcome


def build(outcomes: Outcomes, implementation: dict[str, Any], supported: set[str], cluster: str) -> dict[str, Any]:
    profiles = []
    for support in Support:
        names = sorted(n for n, f in FEATURES.items() if f.support is support)
        stats = {"Passed": 0, "Failed": 0, "Skipped": 0}
        failed, skipped = [], []
        for name in names:
            for test, outcome in sorted(outcomes.results.get(name, {}).items()):
                stats[outcome] += 1
                (failed if outcome == "Failed" else skipped if outcome == "Skipped" else []).append(test)
        result = "failure" if stats["Failed"] else ("partial" if stats["Skipped"] else "success")
        profile: dict[str, Any] = {
            "name": support.value, "result": result, "statistics": stats,
        }
        if failed:
            profile["failedTests"] = failed
        if skipped:
            profile["skippedTests"] = skipped
        if support is Support.EXTENDED:
            profile["supportedFeatures"] = sorted(n for n in names if n in supported)
            profile["unsupportedFeatures"] = sorted(n for n in names if n not in supported)
        profiles.append(profile)
    return {
        "apiVersion": "multinetwork.networking.x-k8s.io/v1alpha1",
        "kind": "ConformanceReport",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "kep": "3698-multi-network (Phase I, Phase II access control)",
        "implementation": {k: implementation.get(k, "") for k in ("organization", "project", "url", "version", "contact")},
        "server": cluster,
        "profiles": profiles,
    }


def dump(report: dict[str, Any]) -> str:
    return yaml.safe_dump(report, sort_keys=False)
