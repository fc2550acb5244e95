"""NetworkPolicy on a secondary network: compiled by the agent's compiler,
enforced by the IPU, explained by the trace model."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from agent.compile import compile_policies, compile_remote_routes
from datapath.entries import Exact, ip
from datapath.trace import Packet, trace
from podnetwork.allocations import Allocation, encode_allocations
from podnetwork.names import ALLOCATIONS_ANNOTATION, POD_NETWORK_ANNOTATION
from tests.datapath.conftest import NFT_TABLE, Env, netns
from tests.support.testbed import Pod
from tests.support.testbed_traffic import TcpServer, tcp_ask

NET = "blue"
NET_ID = 100


def pod_dict(pod: Pod, namespace: str, labels: dict[str, str], ports: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": pod.name, "namespace": namespace, "labels": labels, "annotations": {
            ALLOCATIONS_ANNOTATION: encode_allocations((Allocation(NET, "net1", NET_ID, tuple(pod.attachment.ips)),))}},
        "spec": {"nodeName": pod.node.name, "containers": [
            {"name": "c", "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in (ports or {}).items()]}]},
        "status": {"phase": "Running"},
    }


def policy(name: str, selector: dict[str, str], ingress: list[Any] | None = None,
           egress: list[Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": {"matchLabels": selector}}
    types = []
    if ingress is not None:
        spec["ingress"] = ingress
        types.append("Ingress")
    if egress is not None:
        spec["egress"] = egress
        types.append("Egress")
    spec["policyTypes"] = types
    return {"metadata": {"name": name, "namespace": "prod", "annotations": {POD_NETWORK_ANNOTATION: NET}},
            "spec": spec}


POLICIES = [
    # A named port, resolved against the selected pod's container ports.
    policy("db-from-api", {"app": "db"}, ingress=[
        {"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": "dbport"}]}]),
    # Another namespace by label, a port range with endPort.
    policy("db-from-dev", {"app": "db"}, ingress=[
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "dev"}}}],
         "ports": [{"protocol": "TCP", "port": 8080, "endPort": 8090}]}]),
    # ipBlock with except.
    policy("db-from-block", {"app": "db"}, ingress=[
        {"from": [{"ipBlock": {"cidr": "10.1.0.0/24", "except": ["10.1.0.32/28"]}}], "ports": [{"port": 9000}]}]),
    # More than 8 rules in one policy; only the 10th matters here.
    policy("db-many-rules", {"app": "db"}, ingress=[
        {"from": [{"ipBlock": {"cidr": f"10.9.{i}.0/24"}}], "ports": [{"port": 7000 + i}]} for i in range(9)
    ] + [{"from": [{"podSelector": {"matchLabels": {"app": "other"}}}], "ports": [{"port": 7009}]}]),
    # Egress of the web pod: only to app=other on 8080.
    policy("web-egress", {"app": "web"}, egress=[
        {"to": [{"podSelector": {"matchLabels": {"app": "other"}}}], "ports": [{"port": 8080}]}]),
]

NAMESPACES = [{"metadata": {"name": "prod", "labels": {"team": "prod"}}},
              {"metadata": {"name": "dev", "labels": {"team": "dev"}}}]

# (client, server, port, allowed)
CASES = [
    ("c1", "db", 5432, True),    # podSelector + named port
    ("c1", "db", 8085, False),   # the range is for namespace dev only
    ("c2", "db", 8085, True),    # namespaceSelector + endPort range
    ("c2", "db", 8091, False),   # beyond endPort
    ("c2", "db", 5432, False),   # podSelector is namespace-local
    ("c1", "db", 9000, True),    # ipBlock
    ("c3", "db", 9000, False),   # ipBlock except
    ("c3", "db", 7009, True),    # the 10th rule of one policy
    ("c3", "db", 7008, False),   # the 9th rule's peer is elsewhere
    ("web", "c1", 8080, False),  # egress isolation
    ("web", "c3", 8080, True),   # egress allowed
    ("c1", "web", 8080, True),   # web is not isolated for ingress
]


@netns
def test_policy_allows_and_denies_like_networkpolicy_and_trace_agrees(two_nodes: Env) -> None:
    env = two_nodes
    pods = {
        "db": env.pod("n1", "db", NET_ID, "10.1.0.10/24"),
        "web": env.pod("n2", "web", NET_ID, "10.1.0.11/24"),
        "c1": env.pod("n1", "c1", NET_ID, "10.1.0.20/24"),
        "c2": env.pod("n2", "c2", NET_ID, "10.1.0.21/24"),
        "c3": env.pod("n2", "c3", NET_ID, "10.1.0.35/24"),
    }
    objects = [
        pod_dict(pods["db"], "prod", {"app": "db"}, {"dbport": 5432}),
        pod_dict(pods["web"], "prod", {"app": "web"}),
        pod_dict(pods["c1"], "prod", {"app": "api"}),
        pod_dict(pods["c2"], "dev", {"app": "api"}),
        pod_dict(pods["c3"], "prod", {"app": "other"}),
    ]
    networks = {NET: NET_ID}
    vteps = {name: node.vtep for name, node in env.testbed.nodes.items()}
    for node, dp in env.datapaths.items():
        dp.replace_state(compile_remote_routes(objects, node, vteps, networks)
                         + compile_policies(POLICIES, objects, NAMESPACES, networks, node_name=node))
    entries = {node: dp.client.read() for node, dp in env.datapaths.items()}
    ports = sorted({port for _, _, port, _ in CASES})
    servers = [TcpServer(p.netns, port, p.name) for p in pods.values() for port in ports]
    try:
        for src, dst, port, allowed in CASES:
            kernel = tcp_ask(pods[src].netns, pods[dst].ip, port, timeout=2) is not None
            local = pods[src].node.name
            model = trace(Packet(NET_ID, ip(pods[src].ip), ip(pods[dst].ip), 6, port), entries[local],
                          [e for n, e in entries.items() if n != local])
            assert kernel == allowed, f"{src}->{dst}:{port} kernel {'allowed' if kernel else 'denied'}"
            assert (model.verdict == "allow") == kernel, (src, dst, port, model.steps)
    finally:
        for s in servers:
            s.close()

    # Direct counters of policy_pod: db's ingress entry saw the 8 attempts to it
    # (SYN retransmits of denied attempts may add more).
    counted = {e.get("pod_ip"): packets for e, (packets, _) in
               env.datapaths["n1"].client.read_with_counters("policy_pod") if e.get("direction") == Exact(0)}
    assert counted[Exact(ip(pods["db"].ip))] >= sum(1 for _, dst, _, _ in CASES if dst == "db")

    # The `multinet trace` command reads the targets and prints the same verdict.
    argv = [sys.executable, "-m", "multinet.cli", "trace", "--target", env.targets["n2"].address,
            "--target", env.targets["n1"].address, "--network", str(NET_ID), "--src", pods["c3"].ip,
            "--dst", pods["db"].ip, "--proto", "tcp", "--dport", "9000", "--json"]
    out = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    assert out["verdict"] == "deny"
    assert any("policy_rule: miss" in step for step in out["steps"])


@netns
@pytest.mark.parametrize("policy_count", [3])
def test_several_policies_on_one_pod_share_a_group(two_nodes: Env, policy_count: int) -> None:
    """Pods selected by the same policies get one group; removing a policy
    regroups them without leaving stale kernel objects."""
    env = two_nodes
    a = env.pod("n1", "a", NET_ID, "10.1.0.2/24")
    b = env.pod("n1", "b", NET_ID, "10.1.0.3/24")
    c = env.pod("n1", "c", NET_ID, "10.1.0.4/24")
    objects = [pod_dict(a, "prod", {"role": "srv"}), pod_dict(b, "prod", {"role": "srv"}),
               pod_dict(c, "prod", {"role": "cli"})]
    pols = [policy(f"p{i}", {"role": "srv"}, ingress=[
        {"from": [{"podSelector": {"matchLabels": {"role": "cli"}}}], "ports": [{"port": 6000 + i}]}])
        for i in range(policy_count)]
    dp = env.datapaths["n1"]
    dp.replace_state(compile_policies(pols, objects, NAMESPACES, {NET: NET_ID}, node_name="n1"))
    groups = {e.actions[0].params[0] for e in dp.client.read("policy_pod")}
    assert len(groups) == 1
    assert len(dp.client.read("policy_rule")) == policy_count
    servers = [TcpServer(p.netns, 6000 + i, p.name) for p in (a, b) for i in range(policy_count)]
    try:
        assert all(tcp_ask(c.netns, p.ip, 6000 + i) == p.name for p in (a, b) for i in range(policy_count))
        dp.replace_state(compile_policies(pols[1:], objects, NAMESPACES, {NET: NET_ID}, node_name="n1"))
        assert tcp_ask(c.netns, a.ip, 6000, timeout=1) is None
        assert tcp_ask(c.netns, b.ip, 6001) == "b"
        ruleset = subprocess.run(["ip", "netns", "exec", env.testbed.nodes["n1"].ipu_ns, "nft", "list", "table",
                                  "inet", NFT_TABLE], capture_output=True, text=True, check=True).stdout
        assert ruleset.count("chain pg_ingress_") == 1
    finally:
        for s in servers:
            s.close()
