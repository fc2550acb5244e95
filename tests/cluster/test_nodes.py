"""Real nodes: kubelet and containerd per node, pods of the stock agnhost image
on the default network (the reference bridge plugin, delegated to by
multinet-cni), reached through the real paths: kubelet probes, kubectl exec,
logs and port-forward, the apiserver's pod proxy, `multinet cluster exec`."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from multinet.cluster import mounts, netplan, sysctls
from multinet.cluster.containerd import Containerd
from tests.support.nodes import Cluster, netexec_pod, wait

NAMESPACE = "nodes-test"


@pytest.fixture(scope="module")
def pods(real_nodes: Cluster) -> Iterator[dict[str, dict[str, object]]]:
    """One netexec pod on each node, Ready (so kubelet's readiness probe reached it)."""
    c = real_nodes
    c.kubectl("create", "namespace", NAMESPACE)
    c.apply(netexec_pod("a", "node1", NAMESPACE), netexec_pod("b", "node2", NAMESPACE))
    c.kubectl("wait", "-n", NAMESPACE, "--for=condition=Ready", "pod/a", "pod/b", "--timeout=120s")
    yield {p["metadata"]["name"]: p for p in c.json("get", "pods", "-n", NAMESPACE)["items"]}
    c.kubectl("delete", "namespace", NAMESPACE, "--wait=false")


def ip_of(pod: dict[str, object]) -> str:
    return str(pod["status"]["podIP"])  # type: ignore[index]


def test_nodes_are_real_kubelets_on_containerd(real_nodes: Cluster) -> None:
    nodes = {n["metadata"]["name"]: n for n in real_nodes.json("get", "nodes")["items"]}
    assert sorted(nodes) == ["node1", "node2"]
    plan = netplan.load(real_nodes.state / "cluster" / "network.json")
    assert plan is not None
    for index, (name, node) in enumerate(sorted(nodes.items()), start=1):
        info = node["status"]["nodeInfo"]
        assert info["containerRuntimeVersion"].startswith("containerd://1.")
        assert info["kubeletVersion"] == "v1.34.12"
        internal = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
        # the underlay address: the agents take it as the node's VXLAN endpoint
        assert internal == [plan.node_ip(index)]
        assert node["spec"]["podCIDR"] == plan.pod_cidr(index)


def test_status_shows_each_nodes_kubelet_and_containerd(real_nodes: Cluster) -> None:
    out = real_nodes.multinet("cluster", "status")
    rows = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    for node in ("node1", "node2"):
        assert rows[f"containerd-{node}"].endswith("healthy")
        assert rows[f"kubelet-{node}"].endswith("healthy")  # /healthz over the apiserver's path
    assert out.returncode == 0, out.stdout


def test_pods_get_addresses_from_their_nodes_range_and_reach_each_other(real_nodes: Cluster,
                                                                      pods: dict[str, dict[str, object]]) -> None:
    ranges = {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in real_nodes.json("get", "nodes")["items"]}
    for pod in pods.values():
        node = pod["spec"]["nodeName"]  # type: ignore[index]
        assert ipaddress.ip_address(ip_of(pod)) in ipaddress.ip_network(ranges[node])
    # a across nodes to b, by agnhost's own client
    out = real_nodes.kubectl("exec", "-n", NAMESPACE, "a", "--", "/agnhost", "connect",
                             f"{ip_of(pods['b'])}:8080", "--timeout=5s", check=False)
    assert out == "", out
    # b's answer, asked through a's netexec (the e2e suite's /dial), and through the pod proxy
    dial = json.loads(real_nodes.proxy_get(NAMESPACE, "a", 8080, f"/dial?request=hostname&protocol=http"
                                           f"&host={ip_of(pods['b'])}&port=8080&tries=2"))
    assert dial["responses"] == ["b", "b"], dial
    assert real_nodes.proxy_get(NAMESPACE, "b", 8080, "/hostname") == "b"


def test_pods_and_host_network_pods_reach_the_apiserver_at_its_cluster_ip(
        real_nodes: Cluster, pods: dict[str, dict[str, object]]) -> None:
    """In-cluster clients (the add-on's controller and DaemonSet) use the `kubernetes` Service."""
    c = real_nodes
    host = netexec_pod("hostnet", "node2", NAMESPACE)
    host["spec"]["hostNetwork"] = True
    host["spec"]["containers"][0]["args"] = ["pause"]
    del host["spec"]["containers"][0]["readinessProbe"], host["spec"]["containers"][0]["ports"]
    c.apply(host)
    c.kubectl("wait", "-n", NAMESPACE, "--for=condition=Ready", "pod/hostnet", "--timeout=120s")
    for name in ("a", "hostnet"):
        version = c.kubectl("exec", "-n", NAMESPACE, name, "--", "timeout", "10", "wget", "-qO-",
                            "--no-check-certificate", "https://10.96.0.1/version")
        assert json.loads(version)["gitVersion"] == "v1.34.12", (name, version)
    c.kubectl("delete", "pod", "-n", NAMESPACE, "hostnet", "--wait=false")


def test_exec_and_logs(real_nodes: Cluster, pods: dict[str, dict[str, object]]) -> None:
    addr = real_nodes.kubectl("exec", "-n", NAMESPACE, "a", "--", "ip", "-br", "addr", "show", "eth0")
    assert ip_of(pods["a"]) in addr
    real_nodes.proxy_get(NAMESPACE, "a", 8080, "/echo?msg=logged-by-the-test")
    logs = real_nodes.kubectl("logs", "-n", NAMESPACE, "a")
    assert "GET /echo?msg=logged-by-the-test" in logs


def test_port_forward(real_nodes: Cluster, pods: dict[str, dict[str, object]]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    forward = subprocess.Popen(real_nodes.kubectl_argv("port-forward", "-n", NAMESPACE, "pod/b", f"{port}:8080"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def answer() -> str:
            try:
                return str(urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=2).read().decode())
            except OSError:
                return ""

        assert wait(answer, 30, "the forwarded port to answer") == "b"
    finally:
        forward.terminate()
        forward.wait(10)


def test_cluster_exec_runs_a_host_command_in_the_pods_netns(real_nodes: Cluster,
                                                            pods: dict[str, dict[str, object]]) -> None:
    out = real_nodes.multinet("cluster", "exec", f"{NAMESPACE}/b", "--", "ip", "-j", "addr", "show", "eth0")
    assert out.returncode == 0, out.stderr
    addresses = [a["local"] for link in json.loads(out.stdout) for a in link["addr_info"]]
    assert ip_of(pods["b"]) in addresses
    missing = real_nodes.multinet("cluster", "exec", f"{NAMESPACE}/nope", "--", "true")
    assert missing.returncode == 1 and f"pod {NAMESPACE}/nope" in missing.stderr


def test_a_deleted_pod_leaves_no_sandbox(real_nodes: Cluster) -> None:
    c = real_nodes
    c.apply(netexec_pod("gone", "node1", NAMESPACE))
    c.kubectl("wait", "-n", NAMESPACE, "--for=condition=Ready", "pod/gone", "--timeout=120s")
    node = c.state / "cluster" / "nodes" / "node1"
    netns_dir = Containerd(node / "containerd", node / "cni" / "bin", node / "cni" / "net.d").netns_dir
    ipam = node / "cni" / "ipam" / "default"
    ip = ip_of(c.json("get", "pod", "-n", NAMESPACE, "gone"))
    assert (ipam / ip).exists()  # host-local's reservation, made through multinet's delegation
    sandboxes = set(netns_dir.iterdir())
    assert sandboxes and all(mounts.under(n) for n in sandboxes)  # each a mounted namespace
    c.kubectl("delete", "pod", "-n", NAMESPACE, "gone", "--wait=true", "--timeout=60s")
    wait(lambda: not (ipam / ip).exists(), 60, "the pod's address to be released (CNI DEL)")
    wait(lambda: len(set(netns_dir.iterdir())) == len(sandboxes) - 1, 60, "the sandbox netns to go")
    gone = sandboxes - set(netns_dir.iterdir())
    assert not [n for n in gone if mounts.under(n)]


def test_up_refuses_too_many_nodes(tmp_path: Path, real_nodes: Cluster) -> None:
    out = real_nodes.multinet("cluster", "up", "--nodes", "16", env={"MULTINET_STATE": str(tmp_path)})
    assert out.returncode == 2 and "--nodes must be 0 to 15" in out.stderr
    assert not (tmp_path / "cluster").exists()  # refused before anything was made


def test_kubelet_sysctls_are_recorded_before_the_first_kubelet(real_nodes: Cluster) -> None:
    recorded = json.loads((real_nodes.state / "cluster" / "sysctls.json").read_text())
    assert set(recorded) == set(sysctls.KUBELET_SYSCTLS)
    # kubelet's own value while it runs; the fixture checks the restore after down
    assert sysctls.read()["vm/overcommit_memory"] == "1"


def test_shim_sockets_are_where_down_looks_for_them(real_nodes: Cluster, pods: dict[str, dict[str, object]]) -> None:
    """down removes the sockets of shims it had to kill; their names are computed, so check them."""
    node = real_nodes.state / "cluster" / "nodes" / "node2"
    containerd = Containerd(node / "containerd", node / "cni" / "bin", node / "cni" / "net.d")
    expected = {str(p) for p in containerd.shim_sockets(containerd.containers())}
    pid = json.loads((real_nodes.state / "cluster" / "pids" / "containerd-node2.json").read_text())["pid"]
    listening = {line.split()[-1] for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()
                 if line.split()[-1].startswith("/run/containerd/s/")}
    assert listening and listening <= expected, (listening, expected)
