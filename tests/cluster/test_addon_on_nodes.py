"""multinet on the real nodes of `cluster up --nodes`, installed from deploy/ as on any
cluster: no part of it is a process of the machine, the apiserver reaches its
admission webhooks at the leader's endpoint, a standby takes over when the
leader's pod goes, and a node agent restarted by its DaemonSet serves again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from multinet.cluster import addon, cgroups
from multinet.cluster.containerd import Containerd
from tests.support.nodes import Cluster, netexec_pod
from tests.support.wait import wait_for

NAMESPACE = "addon-test"
LEADER = "multinet.io/leader"
NETWORKS = "multinetwork.networking.x-k8s.io/networks"


def _pods(c: Cluster, selector: str) -> list[dict[str, Any]]:
    return list(c.json("get", "pods", "-n", addon.NAMESPACE, "-l", selector)["items"])


def _ready(pod: dict[str, Any]) -> bool:
    return any(x["type"] == "Ready" and x["status"] == "True" for x in pod["status"].get("conditions") or [])


def _namespace(c: Cluster) -> None:
    if not c.kubectl("get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "name"):
        c.kubectl("create", "namespace", NAMESPACE)
        wait_for("the namespace's default service account",
                 lambda: c.kubectl("get", "serviceaccount", "-n", NAMESPACE, "default", check=False))


def test_no_multinet_part_runs_as_a_process_of_the_machine(real_nodes: Cluster) -> None:
    recorded = sorted(p.stem for p in (real_nodes.state / "cluster" / "pids").glob("*.json"))
    assert recorded == sorted(["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                               "containerd-node1", "containerd-node2", "kubelet-node1", "kubelet-node2"])
    # The agents, IPU targets and controllers are containers of the nodes' containerds:
    # each runs in its node's cgroup subtree, a kubelet's pod.
    for node in ("node1", "node2"):
        root = real_nodes.state / "cluster" / "nodes" / node
        containers = Containerd(root / "containerd", root / "cni" / "bin", root / "cni" / "net.d").containers()
        pods = {p["metadata"]["name"] for p in real_nodes.json("get", "pods", "-n", addon.NAMESPACE,
                                                               "--field-selector", f"spec.nodeName={node}")["items"]}
        assert {p.rsplit("-", 1)[0] for p in pods} >= {"multinet-node", "multinet-ipu"}, pods
        assert len(containers) >= 2 * len(pods)  # a sandbox and at least one container each
        members = cgroups.members(json.loads((real_nodes.state / "cluster" / "topology.json").read_text())
                                  ["cgroups"][int(node[-1]) - 1])
        commands = {Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ") for pid in members
                    if Path(f"/proc/{pid}/cmdline").exists()}
        for part in (b"multinet agent", b"multinet ipu"):
            assert any(part in cmd for cmd in commands), (node, part)


def test_status_shows_the_addon(real_nodes: Cluster) -> None:
    out = real_nodes.multinet("cluster", "status")
    rows = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    for kind, name in addon.WORKLOADS:
        assert rows[f"{kind}/{name}"].endswith("healthy"), out.stdout
    assert out.returncode == 0, out.stdout


def test_one_leader_serves_admission_through_its_endpoint(real_nodes: Cluster) -> None:
    c = real_nodes
    controllers = _pods(c, "app.kubernetes.io/name=multinet-controller")
    assert len(controllers) == 2 and all(_ready(p) for p in controllers)  # the standby is Ready too
    leaders = [p for p in controllers if p["metadata"]["labels"].get(LEADER) == "true"]
    assert len(leaders) == 1, [p["metadata"]["labels"] for p in controllers]
    slices = c.json("get", "endpointslices", "-n", addon.NAMESPACE, "-l", "kubernetes.io/service-name=multinet-webhook")
    addresses = [a for s in slices["items"] for e in s.get("endpoints") or [] for a in e["addresses"]]
    assert addresses == [leaders[0]["status"]["podIP"]]
    _refused_by_the_webhook(c)


def _refused_by_the_webhook(c: Cluster) -> None:
    """A fail-closed webhook answers: the controller's own refusal reaches the user, so the
    apiserver dialled the endpoint (no ClusterIP routing here, no kube-proxy)."""
    _namespace(c)
    pod = netexec_pod("refused", "node1", NAMESPACE, networks='[{"podNetworkName": ""}]')
    out = c.run_kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    assert out.returncode != 0 and "networks.pods.multinet.io" in out.stderr, out.stderr


def test_a_standby_takes_over_when_the_leaders_pod_goes(real_nodes: Cluster) -> None:
    c = real_nodes
    leader = next(p for p in _pods(c, "app.kubernetes.io/name=multinet-controller")
                  if p["metadata"]["labels"].get(LEADER) == "true")
    c.kubectl("delete", "pod", "-n", addon.NAMESPACE, leader["metadata"]["name"], "--wait=false")
    new = wait_for("another replica labelled the leader", lambda: [
        p for p in _pods(c, f"{LEADER}=true") if p["metadata"]["name"] != leader["metadata"]["name"]], 120)
    wait_for("the webhook Service's endpoint follows the leader", lambda: [
        a for s in c.json("get", "endpointslices", "-n", addon.NAMESPACE,
                          "-l", "kubernetes.io/service-name=multinet-webhook")["items"]
        for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")
        for a in e["addresses"] if a == new[0]["status"]["podIP"]], 60)
    _refused_by_the_webhook(c)
    wait_for("the Deployment Ready again (a new standby)", lambda: [
        s for s in addon.workloads(c.kubeconfig, c.kubectl_argv()[0]) if s.name == "multinet-controller" and s.done],
        180)


def test_an_agent_restarted_by_its_daemonset_serves_new_pods(real_nodes: Cluster) -> None:
    c = real_nodes
    _namespace(c)
    (agent,) = [p for p in _pods(c, "app.kubernetes.io/name=multinet-node") if p["spec"]["nodeName"] == "node2"]
    c.kubectl("delete", "pod", "-n", addon.NAMESPACE, agent["metadata"]["name"], "--wait=true", "--timeout=60s")
    wait_for("the DaemonSet's new agent on node2 Ready", lambda: [
        p for p in _pods(c, "app.kubernetes.io/name=multinet-node")
        if p["spec"]["nodeName"] == "node2" and p["metadata"]["uid"] != agent["metadata"]["uid"] and _ready(p)], 180)
    c.apply(netexec_pod("after-restart", "node2", NAMESPACE, networks='[{"podNetworkName": "default"}]'))
    c.kubectl("wait", "-n", NAMESPACE, "--for=condition=Ready", "pod/after-restart", "--timeout=120s")
    status = json.loads(c.kubectl("get", "pod", "-n", NAMESPACE, "after-restart", "-o",
                                  "jsonpath={.metadata.annotations.multinetwork\\.networking\\.x-k8s\\.io/network-status}"))
    assert [(n["podNetworkName"], n["interfaceName"]) for n in status] == [("default", "eth0")]
    c.kubectl("delete", "namespace", NAMESPACE, "--wait=false")
