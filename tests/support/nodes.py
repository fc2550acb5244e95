"""A local cluster with real nodes for tests, brought up and down by the
`multinet cluster` command as a user does, in a state dir and on ports of
its own; `down` is checked to leave nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multinet.cluster import cgroups, mounts, sysctls
from multinet.cluster.binaries import find_bin_dir
from multinet.cluster.control_plane import ControlPlane
from multinet.cluster.layout import Layout
from multinet.cluster.nodes import Nodes
from multinet.cluster.processes import is_running

# Beside a developer's own cluster: shifted from the caller's offset.
TEST_PORT_SHIFT = 20000
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.56"
# `up` builds the multinet image when an input changed (minutes on a busy machine),
# imports it into every node and waits for the add-on: the test that makes the
# cluster gets this much (tests/conftest.py), beyond the suite's per-test timeout.
UP_TIMEOUT = 1500


@dataclass(frozen=True)
class Cluster:
    env: dict[str, str]
    state: Path

    @property
    def kubeconfig(self) -> Path:
        return self.state / "cluster" / "admin.kubeconfig"

    def multinet(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "multinet.cli", *args], env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)

    def kubectl_argv(self, *args: str) -> list[str]:
        return [str(find_bin_dir(None, build=False) / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]

    def run_kubectl(self, *args: str, timeout: float = 120, stdin: str | None = None
                    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.kubectl_argv(*args), input=stdin, capture_output=True, text=True, timeout=timeout)

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120, stdin: str | None = None) -> str:
        out = self.run_kubectl(*args, timeout=timeout, stdin=stdin)
        if check:
            assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
        return out.stdout

    def apply(self, *docs: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(d) for d in docs))

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def proxy_get(self, namespace: str, pod: str, port: int, path: str) -> str:
        """GET through the apiserver's pod proxy."""
        return self.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{path}")


def netexec_pod(name: str, node: str, namespace: str = "default", networks: str | None = None,
                labels: dict[str, str] | None = None) -> dict[str, Any]:
    """agnhost netexec (HTTP 8080, UDP 8081) on `node`, Ready once it answers /healthz."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels or {"app": name}}
    if networks:
        metadata["annotations"] = {"multinetwork.networking.x-k8s.io/networks": networks}
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "netexec", "image": AGNHOST, "args": ["netexec", "--http-port=8080", "--udp-port=8081"],
                "ports": [{"containerPort": 8080}, {"containerPort": 8081, "protocol": "UDP"}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
            }],
        },
    }


@contextmanager
def real_cluster(state: Path, nodes: int = 2) -> Iterator[Cluster]:
    offset = int(os.environ.get("MULTINET_PORT_OFFSET", "0")) + TEST_PORT_SHIFT
    env = {**os.environ, "MULTINET_STATE": str(state), "MULTINET_PORT_OFFSET": str(offset)}
    cluster = Cluster(env, state)
    before = sysctls.read()
    try:  # an `up` cut short (a timeout) leaves what it made: `down` removes it
        up = cluster.multinet("cluster", "up", "--nodes", str(nodes), timeout=UP_TIMEOUT)
        assert up.returncode == 0, up.stderr[-4000:]
        yield cluster
    finally:
        _down_leaves_nothing(cluster, before)


def _down_leaves_nothing(cluster: Cluster, sysctls_before: dict[str, str]) -> None:
    plane = ControlPlane(Layout(cluster.state / "cluster"))
    records = [r for p in plane.layout.pids.glob("*.json") if (r := plane.record(p.stem))] \
        if plane.layout.pids.exists() else []
    saved = os.environ.get("MULTINET_STATE")
    os.environ["MULTINET_STATE"] = cluster.env["MULTINET_STATE"]  # as the CLI sees it
    try:
        node_set = Nodes(plane)
        prefix, plans = node_set.prefix, node_set.plans()
    finally:
        if saved is None:
            del os.environ["MULTINET_STATE"]
        else:
            os.environ["MULTINET_STATE"] = saved
    assert prefix != "mn-", "a cluster in its own state dir must not take the default node names"
    # the values from before any local cluster's kubelets, as the machine's record holds them
    original = json.loads(sysctls.RECORD.read_text())["values"] if sysctls.RECORD.exists() else sysctls_before
    down = cluster.multinet("cluster", "down", timeout=300)
    assert down.returncode == 0, down.stderr[-4000:]
    assert not [r.name for r in records if is_running(r)], "processes left running after down"
    assert not [ns for ns in os.listdir("/var/run/netns") if ns.startswith(prefix)], "namespaces left"
    assert not mounts.under(cluster.state), "mounts left under the state dir"
    assert not [p.cgroup_root for p in plans if cgroups.members(p.cgroup_root)], "processes left in node cgroups"
    assert not [m for m in cgroups.hierarchies() for p in plans if (m / p.cgroup_root).exists()], "cgroups left"
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert f"{prefix}gw" not in links, "the machine's underlay link was left"
    record = json.loads(sysctls.RECORD.read_text()) if sysctls.RECORD.exists() else None
    if record is None:  # the last local cluster with kubelets: the values are back
        assert sysctls.read() == original, "kubelet's sysctls were not restored"
    else:  # another cluster's kubelets run: it restores them when it goes down
        assert str(cluster.state / "cluster" / "topology.json") not in record["owners"]
