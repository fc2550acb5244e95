"""The conformance suite's own unit tests (kep-conformance/selftest), run in
the suite's way: with its own ini, so the suite's cluster plugin stays out.
They need no cluster: selection, the report, truth tables and the plugin's
refusals and reports on runs where no conformance test executes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SELFTEST = ROOT / "kep-conformance" / "selftest"


def test_kep_conformance_selftest_passes() -> None:
    run = subprocess.run([sys.executable, "-m", "pytest", "-c", str(SELFTEST / "pytest.ini"), str(SELFTEST), "-q"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout
