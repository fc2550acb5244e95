"""A Service VIP on a secondary network, balanced by the IPU with conntrack."""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest

from agent.compile import compile_remote_routes, compile_services
from datapath.client.datapath import P4RuntimeDatapath
from datapath.client.p4rt import MODIFY, P4RuntimeClient, WriteError
from datapath.entries import Entry
from podnetwork.names import ENDPOINTSLICE_NETWORK_LABEL, POD_NETWORK_ANNOTATION, SERVICE_VIP_ANNOTATION
from tests.datapath.conftest import NFT_TABLE, Env, netns
from tests.datapath.test_forwarding import _pod_dict
from tests.support.testbed_traffic import TcpServer, talk, tcp_ask, tcp_connect

VIP = "10.96.5.10"
SERVICE_RANGE = "10.96.5.0/24"


def _service() -> dict[str, object]:
    return {"metadata": {"name": "web", "namespace": "default",
                         "annotations": {POD_NETWORK_ANNOTATION: "blue", SERVICE_VIP_ANNOTATION: VIP}},
            "spec": {"clusterIP": "10.0.0.10", "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                                          "targetPort": 8080}]}}


def _slice(addresses: list[str]) -> dict[str, object]:
    return {"metadata": {"name": "web-blue", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web", ENDPOINTSLICE_NETWORK_LABEL: "blue"}},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses]}


@netns
def test_vip_spreads_over_backends_and_keeps_established_flows(two_nodes: Env) -> None:
    env = two_nodes
    client = env.pod("n1", "client", 100, "10.1.0.10/24", extra_routes=(SERVICE_RANGE,))
    backends = [env.pod("n1", "be1", 100, "10.1.0.11/24"), env.pod("n2", "be2", 100, "10.1.0.12/24"),
                env.pod("n2", "be3", 100, "10.1.0.13/24")]
    spare = env.pod("n1", "be4", 100, "10.1.0.14/24")
    pods = [_pod_dict(p.name, p.node.name, "blue", 100, p.ip) for p in [client, *backends, spare]]
    networks = {"blue": 100}
    vteps = {name: node.vtep for name, node in env.testbed.nodes.items()}

    def program(endpoints: list[str]) -> None:
        entries = compile_services([_service()], [_slice(endpoints)], networks)
        assert len(entries) == 1 and len(entries[0].actions) == len(endpoints)
        env.datapaths["n1"].replace_state(compile_remote_routes(pods, "n1", vteps, networks) + entries)

    env.datapaths["n2"].replace_state(compile_remote_routes(pods, "n2", vteps, networks))
    program([b.ip for b in backends])
    servers = [TcpServer(p.netns, 8080, p.name) for p in [*backends, spare]]
    try:
        seen = Counter(tcp_ask(client.netns, VIP, 80) for _ in range(60))
        assert set(seen) == {"be1", "be2", "be3"}, seen  # every backend got some, nothing failed

        # An established connection keeps its backend when the group grows.
        held = tcp_connect(client.netns, VIP, 80)
        assert held is not None
        first = talk(held)
        program([b.ip for b in [*backends, spare]])
        for _ in range(5):
            assert talk(held) == first
        # An agent restart (a new client with the same desired state) writes
        # nothing and the connection carries on.
        old = env.datapaths["n1"]
        old.client.close()
        restarted = P4RuntimeDatapath(P4RuntimeClient(env.targets["n1"].address, election_id=2))
        restarted.ports, restarted.state = dict(old.ports), list(old.state)
        assert restarted.reconnect() == 0
        env.datapaths["n1"] = restarted
        assert talk(held) == first
        held.close()
        seen = Counter(tcp_ask(client.netns, VIP, 80) for _ in range(60))
        assert "be4" in seen and None not in seen, seen

        # The entry's direct counter saw every new connection (first packets
        # only: established packets bypass the nat hook), across the MODIFY.
        ((_, (packets, _)),) = restarted.client.read_with_counters("service")
        assert packets >= 121
    finally:
        for s in servers:
            s.close()


def _backends_map(env: Env) -> str:
    return subprocess.run(["ip", "netns", "exec", env.testbed.nodes["n1"].ipu_ns, "nft", "list", "map", "inet",
                           NFT_TABLE, "backends"], capture_output=True, text=True, check=True).stdout


@netns
def test_an_endpoint_swap_moves_new_connections_and_a_refused_swap_loses_nothing(two_nodes: Env) -> None:
    """A same-size endpoint change is a batch of backend elements only (sent
    over netlink, not through nft): it must reach the kernel with a counter on
    each new element, and when the kernel refuses it (an element removed
    behind the target's back) the update fails whole and the target rebuilds
    the kernel from what it holds."""
    env = two_nodes
    client = env.pod("n1", "client", 100, "10.1.0.10/24", extra_routes=(SERVICE_RANGE,))
    be = [env.pod("n1", f"be{i}", 100, f"10.1.0.{10 + i}/24") for i in (1, 2, 3)]
    pods = [_pod_dict(p.name, p.node.name, "blue", 100, p.ip) for p in [client, *be]]
    vteps = {name: node.vtep for name, node in env.testbed.nodes.items()}
    dp = env.datapaths["n1"]

    def service(endpoints: list[str]) -> Entry:
        (entry,) = compile_services([_service()], [_slice(endpoints)], {"blue": 100})
        return entry

    dp.replace_state(compile_remote_routes(pods, "n1", vteps, {"blue": 100}) + [service([be[0].ip, be[1].ip])])
    servers = [TcpServer(p.netns, 8080, p.name) for p in be]
    try:
        dp.client.write([(MODIFY, service([be[0].ip, be[2].ip]))])
        seen = Counter(tcp_ask(client.netns, VIP, 80) for _ in range(40))
        assert set(seen) == {"be1", "be3"}, seen
        listing = _backends_map(env)
        assert listing.count("counter packets") == 2 and be[1].ip not in listing, listing

        # Drift: be3's bucket (1) disappears from the kernel behind the target.
        subprocess.run(["ip", "netns", "exec", env.testbed.nodes["n1"].ipu_ns, "nft", "delete", "element", "inet",
                        NFT_TABLE, "backends", f"{{ 100 . {VIP} . 6 . 80 . 1 }}"], check=True)
        with pytest.raises(WriteError) as refused:
            dp.client.write([(MODIFY, service([be[0].ip, be[1].ip]))])
        assert "nf_tables refused" in refused.value.errors[0].message, refused.value.errors
        # Nothing of the refused change took effect; the rebuild restored the held entry whole.
        (held,) = dp.client.read("service")
        assert [a.params[0] for a in held.actions] == [a.params[0] for a in service([be[0].ip, be[2].ip]).actions]
        listing = _backends_map(env)
        assert listing.count("counter packets") == 2 and be[2].ip in listing and be[1].ip not in listing, listing
        seen = Counter(tcp_ask(client.netns, VIP, 80) for _ in range(40))
        assert set(seen) == {"be1", "be3"}, seen
    finally:
        for s in servers:
            s.close()
