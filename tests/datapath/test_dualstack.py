"""IPv6 through the whole pipeline: forwarding across nodes over VXLAN on the
IPv4 underlay, Services with one VIP per family, policy with ipBlock/except
and ports, overlapping IPv6 subnets on two networks, and the trace model
checked against the kernel for IPv6 packets."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from typing import Any

from agent.compile import compile_policies, compile_remote_routes, compile_services
from datapath.entries import ip
from datapath.trace import Packet, trace
from podnetwork.allocations import Allocation, encode_allocations
from podnetwork.names import (ALLOCATIONS_ANNOTATION, ENDPOINTSLICE_NETWORK_LABEL, POD_NETWORK_ANNOTATION,
                              SERVICE_VIP_ANNOTATION)
from tests.datapath.conftest import Env, netns
from tests.support.metrics import scrape, value
from tests.support.testbed import Pod
from tests.support.testbed_traffic import TcpServer, talk, tcp_ask, tcp_connect

RANGES = ("10.96.5.0/24", "fd00:96::/112")
VIP4, VIP6 = "10.96.5.10", "fd00:96::10"


def pod_obj(pod: Pod, network: str, labels: dict[str, str] | None = None, namespace: str = "prod") -> dict[str, Any]:
    allocation = Allocation(network, "net1", pod.attachment.network_id, tuple(pod.attachment.ips))
    return {"metadata": {"name": pod.name, "namespace": namespace, "labels": labels or {},
                         "annotations": {ALLOCATIONS_ANNOTATION: encode_allocations((allocation,))}},
            "spec": {"nodeName": pod.node.name}, "status": {"phase": "Running"}}


def dual(env: Env, node: str, name: str, net: int, host: int, **kw: Any) -> Pod:
    """A dual-stack pod: 10.1.0.<host>/24 and fd00:1::<host>/64, the service ranges on-link."""
    return env.pod(node, name, net, (f"10.1.0.{host}/24", f"fd00:1::{host:x}/64"), extra_routes=RANGES, **kw)


def routes(env: Env, objs: list[dict[str, Any]], networks: dict[str, int]) -> None:
    vteps = {name: node.vtep for name, node in env.testbed.nodes.items()}
    for name, dp in env.datapaths.items():
        dp.replace_state(compile_remote_routes(objs, name, vteps, networks))


def agrees(env: Env, src: Pod, dst: str, port: int, kernel: bool, net: int) -> None:
    """The trace model's verdict for the same IPv6 packet equals the kernel's."""
    entries = {node: dp.client.read() for node, dp in env.datapaths.items()}
    local = src.node.name
    result = trace(Packet(net, ip(src.ip6), ip(dst), 6, port, version=6), entries[local],
                   [e for n, e in entries.items() if n != local])
    assert (result.verdict == "allow") == kernel, (src.name, dst, port, result.steps)


@netns
def test_ipv6_pods_reach_each_other_across_nodes_and_the_trace_agrees(two_nodes: Env) -> None:
    env = two_nodes
    a, b, c = dual(env, "n1", "a", 100, 1), dual(env, "n1", "b", 100, 2), dual(env, "n2", "c", 100, 3)
    routes(env, [pod_obj(p, "blue") for p in (a, b, c)], {"blue": 100})
    servers = [TcpServer(p.netns, 8080, p.name) for p in (a, b, c)]
    try:
        assert tcp_ask(a.netns, b.ip6, 8080) == "b"  # same node
        assert tcp_ask(a.netns, c.ip6, 8080) == "c"  # across nodes, IPv6 in VXLAN over the IPv4 underlay
        assert tcp_ask(c.netns, a.ip6, 8080) == "a"
        assert tcp_ask(c.netns, a.ip, 8080) == "a"  # and IPv4 beside it
        assert servers[2].peers[0] == a.ip6  # no NAT on the way
        agrees(env, a, c.ip6, 8080, True, 100)
        # An address nobody has is answered by nobody and dropped, in the model too.
        assert tcp_ask(a.netns, "fd00:1::99", 8080, timeout=1) is None
        agrees(env, a, "fd00:1::99", 8080, False, 100)
        env.datapaths["n2"].detach(c.attachment)
        assert tcp_ask(a.netns, c.ip6, 8080, timeout=1) is None
    finally:
        for s in servers:
            s.close()


def dual_service(policy: str = "RequireDualStack") -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "prod", "annotations": {
        POD_NETWORK_ANNOTATION: "blue", SERVICE_VIP_ANNOTATION: f"{VIP4},{VIP6}"}},
        "spec": {"ipFamilyPolicy": policy, "ipFamilies": ["IPv6", "IPv4"],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def slices(backends: list[Pod]) -> list[dict[str, Any]]:
    out = []
    for family in ("IPv4", "IPv6"):
        out.append({"metadata": {"name": f"web-{family}", "namespace": "prod", "labels": {
            "kubernetes.io/service-name": "web", ENDPOINTSLICE_NETWORK_LABEL: "blue"}}, "addressType": family,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [p.ip if family == "IPv4" else p.ip6], "conditions": {"ready": True}}
                          for p in backends]})
    return out


@netns
def test_ipv6_service_spreads_over_backends_on_both_nodes_beside_its_ipv4_vip(two_nodes: Env) -> None:
    env = two_nodes
    client = dual(env, "n1", "client", 100, 10)
    backends = [dual(env, "n1", "be1", 100, 11), dual(env, "n2", "be2", 100, 12), dual(env, "n2", "be3", 100, 13)]
    objs = [pod_obj(p, "blue") for p in (client, *backends)]
    networks = {"blue": 100}
    vteps = {name: node.vtep for name, node in env.testbed.nodes.items()}
    services = compile_services([dual_service()], slices(backends), networks)
    assert sorted(e.table for e in services) == ["service", "service6"]  # one VIP per family
    env.datapaths["n2"].replace_state(compile_remote_routes(objs, "n2", vteps, networks))
    n1 = env.datapaths["n1"]
    n1.replace_state(compile_remote_routes(objs, "n1", vteps, networks) + services)
    servers = [TcpServer(p.netns, 8080, p.name) for p in backends]
    try:
        seen = Counter(tcp_ask(client.netns, VIP6, 80) for _ in range(45))
        assert set(seen) == {"be1", "be2", "be3"}, seen
        held = tcp_connect(client.netns, VIP6, 80)
        assert held is not None
        with held:
            first = talk(held)
            for _ in range(3):
                assert talk(held) == first  # conntrack keeps the backend
        assert tcp_ask(client.netns, VIP4, 80) in {"be1", "be2", "be3"}
        counted = {e.table: packets for e, (packets, _) in n1.client.read_with_counters("service6")}
        assert counted["service6"] >= 46
        # /metrics credits each IPv6 backend with exactly the connections it served.
        samples = scrape(env.targets["n1"].metrics_url or "")
        for p in backends:
            got = value(samples, "multinet_ipu_service_backend_connections_total", vip=VIP6, backend=f"[{p.ip6}]:8080")
            assert got == seen[p.name] + (first == p.name), (p.name, got, seen)
    finally:
        for s in servers:
            s.close()


def test_ip_family_policy_picks_the_vips() -> None:
    svc = dual_service("SingleStack")
    one = compile_services([svc], slices_of_addresses(), {"blue": 100})
    assert [e.table for e in one] == ["service6"]  # SingleStack: the first of ipFamilies
    svc["spec"]["ipFamilyPolicy"] = "PreferDualStack"
    assert sorted(e.table for e in compile_services([svc], slices_of_addresses(), {"blue": 100})) == \
        ["service", "service6"]
    svc["metadata"]["annotations"][SERVICE_VIP_ANNOTATION] = VIP4  # only one family has a VIP
    assert [e.table for e in compile_services([svc], slices_of_addresses(), {"blue": 100})] == ["service"]


def slices_of_addresses() -> list[dict[str, Any]]:
    return [{"metadata": {"namespace": "prod", "labels": {"kubernetes.io/service-name": "web",
                                                         ENDPOINTSLICE_NETWORK_LABEL: "blue"}},
             "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
             "endpoints": [{"addresses": [a]} for a in ("10.1.0.5", "fd00:1::5")]}]


def netpol(name: str, selector: dict[str, str], ingress: list[Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "prod", "annotations": {POD_NETWORK_ANNOTATION: "blue"}},
            "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"], "ingress": ingress}}


POLICIES = [
    # ipBlock with except, on one port.
    netpol("db-from-block", {"app": "db"}, [{"from": [{"ipBlock": {"cidr": "fd00:1::/112", "except": ["fd00:1::20/124"]}}],
                                            "ports": [{"port": 9000}]}]),
    # Pods by label on a port range.
    netpol("db-from-api", {"app": "db"}, [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                                          "ports": [{"port": 8080, "endPort": 8090}]}]),
]
# (client, port, allowed) toward db
CASES = [
    ("c1", 9000, True),    # in the ipBlock
    ("c2", 9000, False),   # in its except
    ("c1", 8085, True),    # app=api, in the range
    ("c1", 8091, False),   # beyond endPort
    ("c2", 8085, False),   # not app=api
    ("c1", 7000, False),   # no rule for the port
]


@netns
def test_ipv6_policy_allows_and_denies_and_the_trace_agrees(two_nodes: Env) -> None:
    env = two_nodes
    db = dual(env, "n1", "db", 100, 0x10)
    c1 = dual(env, "n2", "c1", 100, 0x11)
    c2 = dual(env, "n2", "c2", 100, 0x21)  # fd00:1::21, inside the except
    objs = [pod_obj(db, "blue", {"app": "db"}), pod_obj(c1, "blue", {"app": "api"}),
            pod_obj(c2, "blue", {"app": "other"})]
    networks = {"blue": 100}
    vteps = {name: node.vtep for name, node in env.testbed.nodes.items()}
    for node, dp in env.datapaths.items():
        dp.replace_state(compile_remote_routes(objs, node, vteps, networks)
                         + compile_policies(POLICIES, objs, [], networks, node_name=node))
    assert env.datapaths["n1"].client.read("policy_rule6")
    pods = {"c1": c1, "c2": c2}
    ports = sorted({port for _, port, _ in CASES})
    servers = [TcpServer(db.netns, port, "db") for port in ports]
    try:
        for src, port, allowed in CASES:
            kernel = tcp_ask(pods[src].netns, db.ip6, port, timeout=1.5) is not None
            assert kernel == allowed, f"{src}->db:{port} over IPv6: kernel {'allowed' if kernel else 'denied'}"
            agrees(env, pods[src], db.ip6, port, kernel, 100)
        # The policy has no IPv4 ipBlock: c1 reaches db over IPv4 only by the podSelector rule.
        assert tcp_ask(c1.netns, db.ip, 8085) == "db"
        assert tcp_ask(c1.netns, db.ip, 9000, timeout=1) is None
    finally:
        for s in servers:
            s.close()
    # `multinet trace` for an IPv6 packet reads the targets and says the same.
    argv = [sys.executable, "-m", "multinet.cli", "trace", "--target", env.targets["n2"].address,
            "--target", env.targets["n1"].address, "--network", "100", "--src", c2.ip6, "--dst", db.ip6,
            "--proto", "tcp", "--dport", "9000", "--json"]
    out = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    assert out["verdict"] == "deny" and any("policy_rule: miss" in s for s in out["steps"]), out


@netns
def test_overlapping_ipv6_subnets_on_two_networks_stay_isolated(two_nodes: Env) -> None:
    env = two_nodes
    # Networks 100 and 200 both use fd00:1::/64 (and 10.1.0.0/24), the same addresses in use.
    a, b = dual(env, "n1", "a", 100, 1), dual(env, "n2", "b", 100, 2)
    x, y, z = dual(env, "n1", "x", 200, 1), dual(env, "n2", "y", 200, 2), dual(env, "n1", "z", 200, 9)
    objs = [pod_obj(p, "blue") for p in (a, b)] + [pod_obj(p, "red") for p in (x, y, z)]
    networks = {"blue": 100, "red": 200}
    vteps = {name: node.vtep for name, node in env.testbed.nodes.items()}
    def service(network: str) -> dict[str, Any]:
        return {"metadata": {"name": "web", "namespace": "prod", "annotations": {
            POD_NETWORK_ANNOTATION: network, SERVICE_VIP_ANNOTATION: VIP6}},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}

    def slice_of(network: str, backend: Pod) -> dict[str, Any]:
        return {"metadata": {"namespace": "prod", "labels": {"kubernetes.io/service-name": "web",
                                                            ENDPOINTSLICE_NETWORK_LABEL: network}},
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": [backend.ip6]}]}

    services = compile_services([service("blue"), service("red")], [slice_of("blue", b), slice_of("red", z)], networks)
    env.datapaths["n2"].replace_state(compile_remote_routes(objs, "n2", vteps, networks))
    env.datapaths["n1"].replace_state(compile_remote_routes(objs, "n1", vteps, networks) + services)
    servers = [TcpServer(p.netns, 8080, p.name) for p in (a, b, x, y, z)]
    try:
        assert tcp_ask(a.netns, b.ip6, 8080) == "b"
        assert tcp_ask(x.netns, y.ip6, 8080) == "y"
        assert tcp_ask(y.netns, x.ip6, 8080) == "x"
        # The same 5-tuple to the same VIP on both networks at once: the
        # conntrack zone of each network keeps the flows and their DNAT apart.
        first = tcp_connect(a.netns, VIP6, 80, source_port=40000)
        second = tcp_connect(x.netns, VIP6, 80, source_port=40000)
        assert first is not None and second is not None
        with first, second:
            for _ in range(3):
                assert (talk(first), talk(second)) == ("b", "z")
        assert tcp_ask(a.netns, z.ip6, 8080, timeout=1) is None  # z exists only on network 200
        assert tcp_ask(b.netns, z.ip6, 8080, timeout=1) is None
    finally:
        for s in servers:
            s.close()
