"""Real packets between pod namespaces through two IPU targets."""

from __future__ import annotations

import pytest

from agent.compile import compile_remote_routes
from datapath.client.p4rt import WriteError
from datapath.entries import ActionCall, Entry, Exact, entry, ip, prefix
from datapath.netns import run_in
from datapath.target.kernel.context import TABLE_BASE
from tests.datapath.conftest import PREFIX, Env, netns
from tests.support.testbed_traffic import TcpServer, talk, tcp_ask, tcp_connect


def _pod_dict(name: str, node: str, network: str, network_id: int, address: str) -> dict[str, object]:
    import json

    from podnetwork.allocations import Allocation, encode_allocations
    from podnetwork.names import ALLOCATIONS_ANNOTATION

    return {"metadata": {"name": name, "namespace": "default", "annotations": {
        ALLOCATIONS_ANNOTATION: encode_allocations((Allocation(network, "net1", network_id, (f"{address}/24",)),))}},
            "spec": {"nodeName": node}, "status": {"phase": "Running"}}


def program_routes(env: Env, pods: list[dict[str, object]], networks: dict[str, int]) -> None:
    vteps = {name: node.vtep for name, node in env.testbed.nodes.items()}
    for name, dp in env.datapaths.items():
        dp.replace_state(compile_remote_routes(pods, name, vteps, networks))


@netns
def test_pods_reach_each_other_across_nodes_over_vxlan(two_nodes: Env) -> None:
    env = two_nodes
    a, b, c = (env.pod(node, name, 100, cidr) for node, name, cidr in
               [("n1", "a", "10.1.0.1/24"), ("n1", "b", "10.1.0.2/24"), ("n2", "c", "10.1.0.3/24")])
    program_routes(env, [_pod_dict(p.name, p.node.name, "blue", 100, p.ip) for p in (a, b, c)], {"blue": 100})
    servers = [TcpServer(p.netns, 8080, p.name) for p in (a, b, c)]
    try:
        assert tcp_ask(a.netns, b.ip, 8080) == "b"  # same node
        assert tcp_ask(a.netns, c.ip, 8080) == "c"  # across nodes
        assert tcp_ask(c.netns, a.ip, 8080) == "a"
        # Detaching a port removes it from the datapath: c can no longer reach a.
        env.datapaths["n1"].detach(a.attachment)
        assert tcp_ask(c.netns, a.ip, 8080, timeout=1) is None
    finally:
        for s in servers:
            s.close()


@netns
def test_two_networks_with_the_same_cidr_stay_isolated(two_nodes: Env) -> None:
    env = two_nodes
    # Network 100 and 200 both use 10.1.0.0/24, with the same addresses in use.
    vip = ("10.96.0.10/32",)
    a, b, x, y, z = (env.pod(node, name, net, cidr, extra_routes=vip) for node, name, net, cidr in [
        ("n1", "a", 100, "10.1.0.1/24"), ("n2", "b", 100, "10.1.0.2/24"), ("n1", "x", 200, "10.1.0.1/24"),
        ("n2", "y", 200, "10.1.0.2/24"), ("n1", "z", 200, "10.1.0.9/24")])
    pods = [_pod_dict(p.name, p.node.name, "blue" if p.attachment.network_id == 100 else "red",
                      p.attachment.network_id, p.ip) for p in (a, b, x, y, z)]
    program_routes(env, pods, {"blue": 100, "red": 200})
    # The same VIP on both networks, with different backends: b on 100, z on 200.
    services = [entry("service", {"network_id": Exact(net), "vip": Exact(ip("10.96.0.10")), "proto": Exact(6),
                                  "port": Exact(80)}, ActionCall("dnat", (ip(backend), 8080)))
                for net, backend in ((100, "10.1.0.2"), (200, "10.1.0.9"))]
    n1 = env.datapaths["n1"]
    n1.replace_state(n1.state + services)
    servers = [TcpServer(p.netns, 8080, p.name) for p in (a, b, x, y, z)]
    try:
        assert tcp_ask(a.netns, "10.1.0.2", 8080) == "b"
        assert tcp_ask(x.netns, "10.1.0.2", 8080) == "y"
        assert tcp_ask(y.netns, "10.1.0.1", 8080) == "x"
        assert tcp_ask(b.netns, "10.1.0.1", 8080) == "a"
        # The very same 5-tuple to the VIP, live on both networks at once:
        # conntrack zones per network keep the flows, and their DNAT, apart.
        first = tcp_connect(a.netns, "10.96.0.10", 80, source_port=40000)
        assert first is not None
        second = tcp_connect(x.netns, "10.96.0.10", 80, source_port=40000)
        assert second is not None
        with first, second:
            for _ in range(3):
                assert (talk(first), talk(second)) == ("b", "z")
        # z exists only on network 200: invisible from network 100.
        assert tcp_ask(x.netns, "10.1.0.9", 8080) == "z"
        assert tcp_ask(a.netns, "10.1.0.9", 8080, timeout=1) is None
        assert tcp_ask(b.netns, "10.1.0.9", 8080, timeout=1) is None
    finally:
        for s in servers:
            s.close()


@netns
def test_ipu_features_are_detected_and_printed(env: Env) -> None:
    import json
    import subprocess
    import sys

    node = env.testbed.add_node("n1")
    out = subprocess.run([sys.executable, "-m", "multinet.cli", "ipu", "--netns", node.ipu_ns, "--prefix", PREFIX,
                          "--features"], capture_output=True, text=True, check=True).stdout
    report = json.loads(out)
    assert report["detected"]["nft_concat_intervals"] is True  # the policy realization depends on it
    assert set(report["used"]) >= {"forwarding", "policy", "services", "conntrack_zones", "overlay"}
    # Probing leaves nothing behind.
    tables = subprocess.run(["ip", "netns", "exec", node.ipu_ns, "nft", "list", "tables"],
                            capture_output=True, text=True, check=True).stdout
    assert "probe" not in tables


@netns
def test_an_entry_naming_a_link_the_ipu_lacks_is_refused_by_name_and_the_rest_applies(two_nodes: Env) -> None:
    env = two_nodes
    a = env.pod("n1", "a", 100, "10.1.0.1/24")
    rep, gone = a.attachment.representor, f"{PREFIX}gone"
    good = entry("route", {"network_id": Exact(100), "dst": prefix("10.1.0.77/32")}, ActionCall("to_port", (rep,)))
    bad_route = entry("route", {"network_id": Exact(100), "dst": prefix("10.1.0.78/32")},
                      ActionCall("to_port", (gone,)))
    bad_neighbor = entry("neighbor", {"port": Exact(gone), "ip": Exact(ip("10.1.0.78"))},
                         ActionCall("set_dmac", (0x0A0000000001,)))
    dp = env.datapaths["n1"]
    with pytest.raises(WriteError) as caught:
        dp.replace_state([good, bad_route, bad_neighbor])
    refused = caught.value.errors
    assert [e.code_name for e in refused] == ["FAILED_PRECONDITION"] * 2
    assert all(f"port {gone!r}: no such link" in e.message for e in refused)
    # CONTINUE_ON_ERROR: the good route reached the kernel, the refused ones are not held.
    routes = run_in(a.node.ipu_ns, ["ip", "route", "show", "table", str(TABLE_BASE + 100)]).stdout
    assert f"10.1.0.77 dev {rep}" in routes and "10.1.0.78" not in routes
    held = {e.key for e in dp.client.read()}
    assert good.key in held and bad_route.key not in held and bad_neighbor.key not in held


@netns
def test_a_route_the_kernel_refuses_at_commit_fails_alone_and_later_updates_meet_it_absent(env: Env) -> None:
    """Routes are queued and sent at the batch's end, so the kernel's refusal
    (a link that is down: ENETDOWN) comes after the update was accepted. It
    must still fail that update alone; a later update of the same entry in
    the batch must meet it absent, as it would have in order; the rest of the
    batch reaches the kernel, and nothing of the refused route is held."""
    from datapath.client.p4rt import DELETE, INSERT, MODIFY

    env.node("n1")
    env.datapath("n1")
    a = env.pod("n1", "a", 100, "10.1.0.1/24")
    rep, down = a.attachment.representor, f"{PREFIX}dn"
    ipu = a.node.ipu_ns
    run_in(ipu, ["ip", "link", "add", down, "type", "veth", "peer", "name", f"{down}p"])  # left down

    def route(address: str, port: str) -> Entry:
        return entry("route", {"network_id": Exact(100), "dst": prefix(f"{address}/32")}, ActionCall("to_port", (port,)))

    good, refused, later = route("10.1.0.77", rep), route("10.1.0.78", down), route("10.1.0.79", rep)
    dp = env.datapaths["n1"]
    last = route("10.1.0.80", down)  # refused at the commit, with no later update to settle it
    batch = [(INSERT, good), (INSERT, refused), (MODIFY, route("10.1.0.78", rep)), (INSERT, later), (INSERT, last)]
    with pytest.raises(WriteError) as caught:
        dp.client.write(batch)
    codes = {e.index: (e.code_name, e.message) for e in caught.value.errors}
    assert set(codes) == {1, 2, 4}, codes
    for i in (1, 4):
        assert codes[i][0] == "INTERNAL" and "kernel refused" in codes[i][1] and "Network is down" in codes[i][1], codes
    assert codes[2][0] == "NOT_FOUND", codes  # the MODIFY met no entry: the INSERT before it had failed
    routes = run_in(ipu, ["ip", "route", "show", "table", str(TABLE_BASE + 100)]).stdout
    assert f"10.1.0.77 dev {rep}" in routes and f"10.1.0.79 dev {rep}" in routes and "10.1.0.78" not in routes, routes
    held = {e.key for e in dp.client.read()}
    assert good.key in held and later.key in held and refused.key not in held and last.key not in held
    # The same entry, now through a link that is up, goes in on its own.
    dp.client.write([(INSERT, route("10.1.0.78", rep))])
    assert "10.1.0.78" in run_in(ipu, ["ip", "route", "show", "table", str(TABLE_BASE + 100)]).stdout
    dp.client.write([(DELETE, good), (DELETE, later), (DELETE, route("10.1.0.78", rep))])
    left = run_in(ipu, ["ip", "route", "show", "table", str(TABLE_BASE + 100)]).stdout
    assert not any(f"10.1.0.{n} " in left for n in (77, 78, 79)), left
