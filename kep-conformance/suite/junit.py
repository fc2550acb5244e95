"""JUnit XML beside the report, from the same ledger: one testsuite per
profile, one testcase per case of every counted test (deselected and skipped
ones as <skipped>), so CI dashboards and the report never disagree."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from suite.ledger import Ledger, Result
from suite.profiles import PROFILES
from suite.version import KEP_COMMIT, SUITE_VERSION

MESSAGE_LIMIT = 400  # the attribute holds the first line; the element the whole text


def _case(parent: ET.Element, profile: str, level: str, nodeid: str, result: Result, reason: str) -> None:
    case = ET.SubElement(parent, "testcase", classname=f"{profile}.{level}", name=nodeid)
    first = reason.strip().splitlines()[0][:MESSAGE_LIMIT] if reason.strip() else ""
    if result is Result.FAILED:
        ET.SubElement(case, "failure", message=first).text = reason
    elif result is Result.SKIPPED:
        ET.SubElement(case, "skipped", message=first)


def build(ledger: Ledger, profiles: tuple[str, ...]) -> ET.Element:
    root = ET.Element("testsuites", name="kep-conformance")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for profile in (p for p in PROFILES if p in profiles):
        suite = ET.SubElement(root, "testsuite", name=profile)
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="suiteVersion", value=SUITE_VERSION)
        ET.SubElement(props, "property", name="kepCommit", value=KEP_COMMIT)
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        for name in sorted(n for n, t in ledger.tests.items() if t.profile == profile and ledger.counted(n)):
            level = "Extended" if ledger.tests[name].extended else "Core"
            for nodeid, outcome in sorted(ledger.cases[name].items()):
                _case(suite, profile, level, nodeid, outcome.result, outcome.reason)
                counts["tests"] += 1
                counts["failures"] += outcome.result is Result.FAILED
                counts["skipped"] += outcome.result is Result.SKIPPED
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    return root


def dump(root: ET.Element) -> str:
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
