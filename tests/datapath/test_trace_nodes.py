"""`multinet trace` across three nodes, checked against the kernel: every
pair of pods, with a policy, over IPv4 and IPv6."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from agent.compile import compile_policies, compile_remote_routes
from datapath.entries import ip
from datapath.trace import Packet, trace
from podnetwork.allocations import Allocation, encode_allocations
from podnetwork.names import ALLOCATIONS_ANNOTATION, POD_NETWORK_ANNOTATION
from tests.datapath.conftest import Env, netns
from tests.support.testbed import Pod
from tests.support.testbed_traffic import TcpServer, tcp_ask

NET, NET_ID = "blue", 100
POLICY = {"metadata": {"name": "guard", "namespace": "prod", "annotations": {POD_NETWORK_ANNOTATION: NET}},
          "spec": {"podSelector": {"matchLabels": {"role": "guarded"}}, "policyTypes": ["Ingress"],
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "friend"}}}],
                                "ports": [{"port": 8080}]}]}}


def obj(pod: Pod, role: str) -> dict[str, Any]:
    allocation = Allocation(NET, "net1", NET_ID, tuple(pod.attachment.ips))
    return {"metadata": {"name": pod.name, "namespace": "prod", "labels": {"role": role},
                         "annotations": {ALLOCATIONS_ANNOTATION: encode_allocations((allocation,))}},
            "spec": {"nodeName": pod.node.name}, "status": {"phase": "Running"}}


@netns
def test_trace_follows_tunnels_across_three_nodes_as_the_kernel_does(env: Env) -> None:
    for name in ("n1", "n2", "n3"):
        env.node(name)
        env.datapath(name)
    roles = {"a1": "friend", "a2": "guarded", "b1": "other", "b2": "friend", "c1": "guarded", "c2": "other"}
    pods = {name: env.pod(f"n{'abc'.index(name[0]) + 1}", name, NET_ID,
                          (f"10.1.0.{i + 1}/24", f"fd00:1::{i + 1:x}/64"))
            for i, name in enumerate(roles)}
    objs = [obj(p, roles[n]) for n, p in pods.items()]
    vteps = {name: node.vtep for name, node in env.testbed.nodes.items()}
    for node, dp in env.datapaths.items():
        dp.replace_state(compile_remote_routes(objs, node, vteps, {NET: NET_ID})
                         + compile_policies([POLICY], objs, [], {NET: NET_ID}, node_name=node))
    entries = {node: dp.client.read() for node, dp in env.datapaths.items()}
    servers = [TcpServer(p.netns, port, p.name) for p in pods.values() for port in (8080, 9090)]
    outcomes = set()
    try:
        for src in pods.values():
            local = src.node.name
            others = [n for n in entries if n != local]
            for dst in pods.values():
                if dst is src:
                    continue
                for version, port in ((4, 8080), (4, 9090), (6, 8080)):
                    s, d = (src.ip, dst.ip) if version == 4 else (src.ip6, dst.ip6)
                    kernel = tcp_ask(src.netns, d, port, timeout=1) == dst.name
                    model = trace(Packet(NET_ID, ip(s), ip(d), 6, port, version), entries[local],
                                  [entries[n] for n in others], [ip(vteps[n]) for n in others])
                    assert (model.verdict == "allow") == kernel, (src.name, dst.name, version, port, model.steps)
                    outcomes.add(kernel)
    finally:
        for srv in servers:
            srv.close()
    assert outcomes == {True, False}  # the policy denied some pairs and others went through
    # The command, with the VTEPs given for two nodes and inferred for none:
    # a1 (n1) to c1 (n3) is allowed, b1 (n2) to c1 is not.
    n1, n2, n3 = (env.targets[n] for n in ("n1", "n2", "n3"))
    for name, verdict in (("a1", "allow"), ("b1", "deny")):
        first = env.targets[pods[name].node.name]
        rest = [t for t in (n1, n2, n3) if t is not first]
        argv = [sys.executable, "-m", "multinet.cli", "trace", "--target", first.address,
                *(a for t in rest for a in ("--target", f"{t.node.vtep}={t.address}")),
                "--network", str(NET_ID), "--src", pods[name].ip, "--dst", pods["c1"].ip, "--dport", "8080", "--json"]
        out = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
        assert out["verdict"] == verdict, out
        assert any(f"remote route at {n3.node.vtep}: hit" in s for s in out["steps"]), out
