"""End to end: the local cluster with two emulated nodes, the demo's telco
slice on three secondary networks, real packets through policy and a Service,
and the KEP conformance suite with every feature declared, reported honestly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from multinet.cluster.binaries import find_bin_dir
from multinet.cluster.control_plane import ControlPlane
from multinet.cluster.layout import Layout
from multinet.cluster.nodes import Nodes
from multinet.cluster.processes import is_running
from tests.conftest import require_root

ROOT = Path(__file__).resolve().parents[2]
# Beside a developer's own cluster on the default ports; MULTINET_PORT_OFFSET moves it.
PORT_OFFSET = os.environ.get("MULTINET_PORT_OFFSET", "23000")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    require_root()
    state = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "MULTINET_STATE": str(state), "MULTINET_PORT_OFFSET": PORT_OFFSET}
    up = subprocess.run([sys.executable, "-m", "multinet.cli", "cluster", "up", "--nodes", "2"],
                        env=env, capture_output=True, text=True, timeout=600)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        yield env
    finally:
        plane = ControlPlane(Layout(state / "cluster"))
        records = [r for p in plane.layout.pids.glob("*.json") if (r := plane.record(p.stem))]
        saved = os.environ.get("MULTINET_STATE")
        os.environ["MULTINET_STATE"] = env["MULTINET_STATE"]  # as the CLI saw it
        try:
            prefix = Nodes(plane).prefix
        finally:
            if saved is None:
                del os.environ["MULTINET_STATE"]
            else:
                os.environ["MULTINET_STATE"] = saved
        assert prefix != "mn-", "a cluster in its own state dir must not take the default node names"
        down = subprocess.run([sys.executable, "-m", "multinet.cli", "cluster", "down"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert down.returncode == 0, down.stderr[-3000:]
        assert not [r.name for r in records if is_running(r)], "processes left running after down"
        assert not [ns for ns in os.listdir("/var/run/netns") if ns.startswith(prefix)], "namespaces left"


def kubectl(env: dict[str, str], *args: str, check: bool = True) -> str:
    kubeconfig = Path(env["MULTINET_STATE"]) / "cluster" / "admin.kubeconfig"
    out = subprocess.run([str(find_bin_dir(None, build=False) / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
                         capture_output=True, text=True, timeout=120)
    if check:
        assert out.returncode == 0, out.stderr
    return out.stdout


def probe(env: dict[str, str], pod: str, host: str, port: int, count: int = 1) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "multinet.cli", "cluster", "exec", pod, "--",
         sys.executable, "-m", "multinet.cluster.probe", host, str(port), "--count", str(count)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    return out.stdout.split("\n")[:count]


def address(env: dict[str, str], pod: str, network: str) -> str:
    ns, name = pod.split("/")
    status = json.loads(kubectl(env, "get", "pod", "-n", ns, name, "-o",
                                "jsonpath={.metadata.annotations.multinetwork\\.networking\\.x-k8s\\.io/network-status}"))
    return str([n for n in status if n["podNetworkName"] == network][0]["ips"][0].split("/")[0])


@pytest.fixture(scope="module")
def demo(cluster: dict[str, str]) -> dict[str, str]:
    deadline = time.monotonic() + 90
    while kubectl(cluster, "get", "podnetworks", "default", check=False) == "":
        assert time.monotonic() < deadline, "the controller never installed the PodNetwork API"
        time.sleep(1)
    kubectl(cluster, "apply", "-f", str(ROOT / "hack" / "manifests" / "demo.yaml"))
    for pod in ("ran/du", "ran/cu", "core/intruder", "core/upf-0", "core/upf-1", "core/upf-2"):
        ns, name = pod.split("/")
        kubectl(cluster, "wait", "-n", ns, "--for=condition=Ready", f"pod/{name}", "--timeout=180s")
    return cluster


def test_each_pod_gets_its_interfaces(demo: dict[str, str]) -> None:
    status = json.loads(kubectl(demo, "get", "pod", "-n", "ran", "cu", "-o",
                                "jsonpath={.metadata.annotations.multinetwork\\.networking\\.x-k8s\\.io/network-status}"))
    assert [(n["podNetworkName"], n["interfaceName"]) for n in status] == [
        ("default", "eth0"), ("fronthaul", "fh0"), ("userplane", "up0"), ("oam", "oam0")]


def test_policy_allows_the_cu_and_drops_the_intruder_across_nodes(demo: dict[str, str]) -> None:
    du = address(demo, "ran/du", "fronthaul")
    assert probe(demo, "ran/cu", du, 8080) == ["du"]
    assert probe(demo, "core/intruder", du, 8080)[0].startswith("timed out")


def test_service_vip_spreads_over_every_upf(demo: dict[str, str]) -> None:
    deadline = time.monotonic() + 60
    while not (vip := kubectl(demo, "get", "service", "-n", "core", "upf", "-o",
                              "jsonpath={.metadata.annotations.multinetwork\\.networking\\.x-k8s\\.io/service-vip}")):
        assert time.monotonic() < deadline, "the controller gave the Service no VIP"
        time.sleep(0.5)
    assert vip.startswith("10.96.20."), vip  # from the user plane's service range
    answers = Counter(probe(demo, "ran/cu", vip, 2152, count=24))
    assert set(answers) == {"upf-0", "upf-1", "upf-2"}, answers


PROFILES = {"MULTINETWORK-API", "MULTINETWORK-ATTACHMENT", "MULTINETWORK-ACCESS", "MULTINETWORK-POLICY",
            "MULTINETWORK-SERVICES"}
# Profiles whose tests send packets between agnhost probe pods.
DATA_PLANE = {"MULTINETWORK-ATTACHMENT", "MULTINETWORK-POLICY", "MULTINETWORK-SERVICES"}


def emulated_nodes(env: dict[str, str]) -> bool:
    """Whether the nodes are the emulator's (pods there are not agnhost containers)."""
    return bool(kubectl(env, "get", "nodes", "-l", "multinet.io/emulated=true", "-o", "name").strip())


def test_kep_conformance_reports_every_profile_honestly(demo: dict[str, str], tmp_path: Path) -> None:
    report = tmp_path / "report.yaml"
    kubeconfig = Path(demo["MULTINET_STATE"]) / "cluster" / "admin.kubeconfig"
    run = subprocess.run(
        [sys.executable, str(ROOT / "kep-conformance" / "kep-conformance"), "-q", "--kubeconfig", str(kubeconfig),
         "--implementation", str(ROOT / "kep-conformance" / "implementations" / "multinet.yaml"),
         "--all-features", "--allow-disruptive", "--report-output", str(report)],
        capture_output=True, text=True, timeout=3600, cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-6000:]  # nothing failed
    profiles = {p["name"]: p for p in yaml.safe_load(report.read_text())["profiles"]}
    assert set(profiles) == PROFILES
    assert profiles["MULTINETWORK-API"]["core"]["result"] == "success", profiles["MULTINETWORK-API"]
    assert profiles["MULTINETWORK-API"]["extended"]["result"] == "success", profiles["MULTINETWORK-API"]
    assert profiles["MULTINETWORK-ACCESS"]["core"]["result"] == "success", profiles["MULTINETWORK-ACCESS"]
    emulated = emulated_nodes(demo)
    for name in sorted(DATA_PLANE):
        levels = [profiles[name][level]["result"] for level in ("core", "extended")]
        if emulated:  # emulated pods are not agnhost: their data-plane tests are skipped, never passed
            assert "failure" not in levels and "success" not in levels, profiles[name]
        else:
            assert levels == ["success", "success"], profiles[name]
    # NetworkSelfDiscovery reads a file inside a probe pod.
    assert profiles["MULTINETWORK-ACCESS"]["extended"]["result"] == ("partial" if emulated else "success")
