"""The fault lane's short version (`hack/chaos --short`) on the real-nodes
cluster: pods churned over three secondary networks and a TCP flow on each
between the nodes while the agent, the IPU target, a controller replica,
containerd, kubelet, kube-apiserver and etcd are each SIGKILLed once and come
back. Its JSON must show every invariant held after each fault, at the end
and after its pods were deleted, and the cluster must be healthy afterwards
(the tests after this one use it)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.nodes import Cluster

ROOT = Path(__file__).resolve().parents[2]
KINDS = {"agent", "ipu", "controller", "containerd", "kubelet", "kube-apiserver", "etcd"}


@pytest.mark.timeout(1800)
def test_short_fault_lane_keeps_every_invariant(real_nodes: Cluster, tmp_path: Path) -> None:
    output = tmp_path / "chaos.json"
    run = subprocess.run([str(ROOT / "hack" / "chaos"), "--short", "--output", str(output)], env=real_nodes.env,
                         capture_output=True, text=True, timeout=1700, cwd=ROOT)
    assert output.exists(), run.stderr[-4000:]
    report = json.loads(output.read_text())
    assert {f["kind"] for f in report["faults"]} == KINDS, run.stderr[-4000:]
    assert not [f for f in report["faults"] if "error" in f], [f.get("error") for f in report["faults"]]
    held = report["invariants"]
    assert held["duplicates"] == 0, [c["checks"].get("duplicate_addresses") for c in report["faults"]]
    assert held["orphan_allocations"] == 0, report["after_cleanup"].get("orphans")
    assert held["leaks"] == 0, report["after_cleanup"].get("leaked")
    assert held["missing_interfaces"] == 0 and held["churn_missing_interfaces"] == 0, report["pods"]
    assert held["pods_without_datapath_entries"] == 0 and held["datapath_mismatches"] == 0, report["final"]
    # every flow kept its one connection through every fault (stalls are reported, not judged)
    assert held["flows_reconnected"] == 0, report["flows"]
    assert all(v == 0 for v in held.values()), held
    # the lane did its work: pods came and went over every network, flows carried lines throughout
    assert report["pods"]["running"] >= 10 and report["pods"]["deleted"] >= report["pods"]["running"], report["pods"]
    assert len(report["flows"]) == 3 and all(f["lines_echoed"] > 100 and f["running"] for f in report["flows"])
    assert run.returncode == 0, run.stderr[-4000:]
    status = real_nodes.multinet("cluster", "status")
    assert status.returncode == 0, status.stdout
