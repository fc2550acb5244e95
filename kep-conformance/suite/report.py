"""The ConformanceReport, shaped as Gateway API's (conformance/apis/v1).

Per selected profile: Core and Extended results with statistics and the
skipped and failed tests by name; Extended lists the features declared
supported and those not. A level is `success` only when every counted test
passed and at least one ran: skipped tests make it `partial`, any failure
makes it `failure`, and a level where nothing ran is never `success`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import yaml

from suite.ledger import Ledger, Result
from suite.profiles import PROFILES, extended_features
from suite.version import KEP, KEP_COMMIT, REPORT_API_VERSION, SUITE_VERSION

IMPLEMENTATION_FIELDS = ("organization", "project", "url", "version", "contact")


@dataclass(frozen=True)
class RunInfo:
    implementation: dict[str, Any]
    api_binding: dict[str, Any]
    mode: str
    profiles: tuple[str, ...]
    supported: frozenset[str]
    cluster: str
    date: str = ""


def _level(ledger: Ledger, names: list[str]) -> dict[str, Any]:
    stats = {r.value: 0 for r in (Result.PASSED, Result.FAILED, Result.SKIPPED)}
    failed, skipped = [], []
    for name in sorted(names):
        outcome = ledger.result(name)
        stats[outcome.result.value] += 1
        if outcome.result is Result.FAILED:
            failed.append(name)
        elif outcome.result is Result.SKIPPED:
            skipped.append(name)
    level: dict[str, Any] = {"result": verdict(stats), "statistics": stats}
    if skipped:
        level["skippedTests"] = skipped
    if failed:
        level["failedTests"] = failed
    return level


def verdict(stats: dict[str, int]) -> str:
    if stats[Result.FAILED.value]:
        return "failure"
    if stats[Result.SKIPPED.value] or not stats[Result.PASSED.value]:
        return "partial"
    return "success"


def _summary(kind: str, level: dict[str, Any]) -> str:
    stats = level["statistics"]
    if level["result"] == "failure":
        return f"{kind} tests failed with {stats['Failed']} test failures"
    if not stats["Passed"]:
        return f"{kind} tests: none ran" + (f" ({stats['Skipped']} skipped)" if stats["Skipped"] else "")
    if level["result"] == "partial":
        return f"{kind} tests partially succeeded with {stats['Skipped']} test skips"
    return f"{kind} tests succeeded"


def profile_report(ledger: Ledger, profile: str, supported: frozenset[str]) -> dict[str, Any]:
    counted = [n for n, t in ledger.tests.items() if t.profile == profile and ledger.counted(n)]
    core = _level(ledger, [n for n in counted if not ledger.tests[n].extended])
    report: dict[str, Any] = {"name": profile, "summary": "", "core": core}
    summary = [_summary("Core", core)]
    features = extended_features(profile)
    if features:
        extended = _level(ledger, [n for n in counted if ledger.tests[n].extended])
        extended["supportedFeatures"] = [f for f in features if f in supported]
        extended["unsupportedFeatures"] = [f for f in features if f not in supported]
        report["extended"] = extended
        summary.append(_summary("Extended", extended))
    report["summary"] = ". ".join(summary) + "."
    return report


def build(ledger: Ledger, info: RunInfo) -> dict[str, Any]:
    date = info.date or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    provisional = sorted(n for n, t in ledger.tests.items()
                         if t.is_provisional and ledger.counted(n) and ledger.result(n).result is Result.PASSED)
    report: dict[str, Any] = {
        "apiVersion": REPORT_API_VERSION,
        "kind": "ConformanceReport",
        "implementation": {k: info.implementation.get(k) for k in IMPLEMENTATION_FIELDS},
        "date": date,
        "suiteVersion": SUITE_VERSION,
        "kep": {"name": KEP, "commit": KEP_COMMIT},
        "apiBinding": info.api_binding,
        "mode": info.mode,
        "cluster": info.cluster,
        "profiles": [profile_report(ledger, p, info.supported) for p in PROFILES if p in info.profiles],
    }
    if provisional:
        report["succeededProvisionalTests"] = provisional
    return report


def dump(report: dict[str, Any]) -> str:
    return yaml.safe_dump(report, sort_keys=False)
