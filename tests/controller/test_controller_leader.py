"""One active replica: a second controller waits while the first holds the lease."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.controller.controller_support import REPO, ControllerProcess
from tests.support.wait import wait_for

pytestmark = pytest.mark.cluster


def test_second_replica_waits_for_the_lease(controller: ControllerProcess, tmp_path: Path) -> None:
    log = tmp_path / "second.log"
    second = subprocess.Popen(
        [sys.executable, "-m", "multinet.cli", "controller", "--kubeconfig", controller.kubeconfig],
        cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_for("the second replica to report it waits",
                 lambda: "another replica holds lease" in log.read_text(), timeout=60)
        time.sleep(3)
        assert second.poll() is None
        assert "acquired leader lease" not in log.read_text()
        assert "registered MutatingWebhookConfiguration" not in log.read_text()
    finally:
        second.terminate()
        second.wait(30)


def test_a_stopped_controller_leaves_no_key_material(controller: ControllerProcess) -> None:
    """Without --cert-dir the webhook CA and serving keys go in a temporary directory of
    the run's own; a clean stop (SIGTERM) removes it. (A SIGKILLed run, as an earlier
    test makes, cannot: those directories stay, and are not this test's.)"""
    controller.require_own()

    def cert_dirs() -> set[Path]:
        return {p for p in controller.tmpdir.iterdir() if p.name.startswith("multinet-webhook-")}

    before = cert_dirs()
    running = max(before, key=lambda p: p.stat().st_mtime, default=None)  # the live run's: the newest
    assert running is not None and (running / "webhook.key").exists(), before
    controller.stop()
    after = cert_dirs()
    controller.start()  # for the tests after this one
    assert before - after == {running} and after <= before, (before, after)
