"""The source guard with crafted packets from inside a pod: a pod that sends
from an address or a MAC that is not its own, on either family, is dropped
at its port (on its own node and toward another node), the drops are
counted on /metrics, and its own traffic passes again once it stops.
Every negative cell has a positive control before and after it, so a dead
network cannot pass for a guarded one."""

from __future__ import annotations

import socket
import time

from datapath.netns import call_in
from multinet.cluster.topology import sh
from tests.datapath.conftest import Env, netns
from tests.datapath.test_dualstack import dual, pod_obj, routes
from tests.datapath.test_metrics import scrape, value
from tests.support.testbed import Pod
from tests.support.testbed_traffic import UdpServer, udp_ask
from tests.support.wait import wait_for

PORT = 9000


def send_from(pod: Pod, source: str, dst: str, count: int = 3) -> None:
    """Datagrams to `dst` with the (possibly forged) source bound in the pod."""
    def send() -> None:
        family = socket.AF_INET6 if ":" in dst else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((source, 0))
            for _ in range(count):
                s.sendto(b"forged", (dst, PORT))
    call_in(pod.netns, send)


SETTLE = 1.0  # datagrams let through arrive well within it


def spoofed(metrics: str) -> float:
    return value(scrape(metrics), "multinet_ipu_spoofed_packets_total")


def reaches(src: Pod, dsts: list[Pod]) -> None:
    """Positive control: the pod's own addresses reach every peer, both families."""
    for dst in dsts:
        for address in (dst.ip, dst.ip6):
            assert udp_ask(src.netns, address, PORT) is not None, (src.name, address)


@netns
def test_forged_source_addresses_and_macs_are_dropped_at_the_port(two_nodes: Env) -> None:
    env = two_nodes
    a, b, c = dual(env, "n1", "a", 100, 1), dual(env, "n1", "b", 100, 2), dual(env, "n2", "c", 100, 3)
    routes(env, [pod_obj(p, "blue") for p in (a, b, c)], {"blue": 100})
    servers = {p.name: UdpServer(p.netns, PORT, p.name) for p in (b, c)}
    metrics = env.targets["n1"].metrics_url
    assert metrics is not None
    try:
        reaches(a, [b, c])
        # An address of the pod's subnet that nobody holds, toward both
        # peers; then the address of another pod (impersonation) toward the
        # third, each added inside the pod as its owner could.
        forged = {"10.1.0.77/32": [b.ip, c.ip], "fd00:1::77/128": [b.ip6, c.ip6],
                  f"{b.ip}/32": [c.ip], f"{b.ip6}/128": [c.ip6]}
        for cidr, targets in forged.items():
            sh("ip", "-n", a.netns, "addr", "add", cidr, "dev", "net1", *(("nodad",) if ":" in cidr else ()))
            source = cidr.split("/")[0]
            for target in targets:
                before = spoofed(metrics)
                send_from(a, source, target)
                wait_for(f"the guard to count {source} -> {target}", lambda: spoofed(metrics) > before, timeout=10)
            sh("ip", "-n", a.netns, "addr", "del", cidr, "dev", "net1")
        time.sleep(SETTLE)
        sources = {cidr.split("/")[0] for cidr in forged}
        for name, server in servers.items():
            assert not sources & set(server.peers), f"{name} heard forged datagrams: {server.peers}"
        reaches(a, [b, c])  # its own addresses still pass

        # The pod's own address from another MAC: dropped too, until the MAC is its own again.
        own_mac = a.attachment.mac
        sh("ip", "-n", a.netns, "link", "set", "net1", "address", "02:00:00:00:be:ef")
        seen = {name: len(server.peers) for name, server in servers.items()}
        try:
            for dst in (b, c):
                send_from(a, a.ip, dst.ip)
                send_from(a, a.ip6, dst.ip6)
            time.sleep(SETTLE)
            for name, server in servers.items():
                assert server.peers[seen[name]:] == [], f"{name} heard {a.name} from a MAC not its own"
        finally:
            sh("ip", "-n", a.netns, "link", "set", "net1", "address", own_mac)
        reaches(a, [b, c])
    finally:
        for server in servers.values():
            server.close()


@netns
def test_a_forged_route_does_not_reach_another_network(two_nodes: Env) -> None:
    """A pod that routes another network's subnet (both families) out of its
    own interface still reaches only its own network: its port puts every
    packet into its network's tables, where the other network's addresses
    are not, on its node and across nodes."""
    env = two_nodes
    a = dual(env, "n1", "a", 100, 1)
    peers = [env.pod(node, name, 200, (f"10.2.0.{host}/24", f"fd00:2::{host}/64"))
             for node, name, host in (("n1", "r1", 5), ("n2", "r2", 6))]
    routes(env, [pod_obj(a, "blue")] + [pod_obj(p, "red") for p in peers], {"blue": 100, "red": 200})
    servers = [UdpServer(p.netns, PORT, p.name) for p in peers]
    try:
        # Positive control: the red pods reach each other on red, across nodes.
        assert udp_ask(peers[0].netns, peers[1].ip, PORT) is not None
        assert udp_ask(peers[1].netns, peers[0].ip6, PORT) is not None
        for cidr in ("10.2.0.0/24", "fd00:2::/64"):
            sh("ip", "-n", a.netns, "route", "add", cidr, "dev", "net1")
        for peer in peers:
            for address in (peer.ip, peer.ip6):
                assert udp_ask(a.netns, address, PORT, timeout=1) is None, f"blue pod reached red {address}"
        time.sleep(SETTLE)
        assert not {a.ip, a.ip6} & {peer for s in servers for peer in s.peers}
    finally:
        for server in servers:
            server.close()
