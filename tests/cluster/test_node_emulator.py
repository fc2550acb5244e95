"""The node emulator against the real control plane, with the reference CNI
plugins (bridge + host-local) as the node's network: pods are scheduled by the
real scheduler, get a sandbox network namespace and an address, reach each
other, and leave nothing behind when deleted."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from pyroute2 import netns

from multinet.cluster.node_emulator import pod_ready, result_ips, sandbox_netns
from multinet.cluster.processes import ProcessRecord, spawn, stop
from tests.conftest import require_root

REFERENCE_PLUGINS = Path("/usr/lib/cni")


def test_pod_ready_needs_every_readiness_gate() -> None:
    pod = {"spec": {"readinessGates": [{"conditionType": "x/attached"}]}, "status": {"conditions": []}}
    assert pod_ready(pod, containers_ready=True) == (False, "ReadinessGatesNotReady")
    pod["status"]["conditions"] = [{"type": "x/attached", "status": "True"}]
    assert pod_ready(pod, containers_ready=True) == (True, "")
    assert pod_ready(pod, containers_ready=False) == (False, "ContainersNotReady")


def test_result_ips_picks_the_sandbox_interface() -> None:
    result = {
        "interfaces": [{"name": "cni0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/x"}],
        "ips": [{"address": "10.1.0.5/24", "interface": 2}, {"address": "10.9.0.1/24", "interface": 0}],
    }
    assert result_ips(result, "eth0") == ["10.1.0.5"]


@pytest.fixture
def emulated_node(kubeconfig: Path, tmp_path: Path) -> Iterator[str]:
    require_root()
    if not (REFERENCE_PLUGINS / "bridge").exists():
        pytest.skip("reference CNI plugins (containernetworking-plugins) not installed")
    suffix = uuid.uuid4().hex[:6]
    node, host = f"mn-emu-{suffix}", f"mn-emuhost-{suffix}"
    netns.create(host)
    subprocess.run(["ip", "netns", "exec", host, "ip", "link", "set", "lo", "up"], check=True)
    conf = tmp_path / "net.d"
    conf.mkdir()
    (conf / "10-bridge.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "emu",
        "plugins": [{
            "type": "bridge", "bridge": "mn-ebr0", "isGateway": True,
            "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
                     "ranges": [[{"subnet": "10.250.7.0/24"}]]},
        }],
    }))
    record = spawn(node, [
        sys.executable, "-m", "multinet.cli", "node", "--name", node, "--kubeconfig", str(kubeconfig),
        "--host-netns", host, "--internal-ip", "10.250.255.1", "--cni-conf-dir", str(conf),
        "--cni-bin-dir", str(REFERENCE_PLUGINS), "--state-dir", str(tmp_path / "state"),
    ], tmp_path / "node.log")
    try:
        yield node
    finally:
        stop(record)
        print((tmp_path / "node.log").read_text()[-3000:])
        netns.remove(host)
        try:
            client.CoreV1Api(config.new_client_from_config(str(kubeconfig))).delete_node(node)
        except ApiException:
            pass


def _wait(predicate, timeout: float = 60, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def test_pods_run_on_the_emulated_node_and_reach_each_other(kubeconfig: Path, emulated_node: str) -> None:
    core = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    def node_ready() -> bool:
        try:
            conditions = core.read_node(emulated_node).status.conditions or []
        except ApiException as err:
            if err.status == 404:  # not registered yet
                return False
            raise
        return any(c.type == "Ready" and c.status == "True" for c in conditions)

    _wait(node_ready, what="node Ready")
    names = [f"{emulated_node}-a", f"{emulated_node}-b"]
    for name in names:
        core.create_namespaced_pod("default", {
            "metadata": {"name": name},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": emulated_node},
                "containers": [{"name": "app", "image": "none", "ports": [{"containerPort": 8080}]}],
            },
        })
    pods = [_wait(lambda n=n: (p := core.read_namespaced_pod(n, "default")).status.pod_ip and p, what=f"{n} running")
            for n in names]
    assert all(p.spec.node_name == emulated_node and p.status.phase == "Running" for p in pods)
    assert all(p.status.pod_ip.startswith("10.250.7.") for p in pods)
    a, b = pods
    a_ns = sandbox_netns(emulated_node, a.metadata.uid)
    # a real packet from pod a's sandbox to pod b's server through the bridge
    out = subprocess.run(
        ["ip", "netns", "exec", a_ns, sys.executable, "-c",
         f"import socket; s=socket.create_connection(('{b.status.pod_ip}', 8080), timeout=5); print(s.recv(100).decode())"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.stdout.strip() == b.metadata.name, out.stderr
    for name in names:
        core.delete_namespaced_pod(name, "default")
    for p in pods:
        _wait(lambda p=p: sandbox_netns(emulated_node, p.metadata.uid) not in netns.listnetns(), what="sandbox removed")

    def gone(name: str) -> bool:
        try:
            core.read_namespaced_pod(name, "default")
        except ApiException as err:
            return err.status == 404
        return False

    for name in names:
        _wait(lambda n=name: gone(n), what=f"{name} deleted")
