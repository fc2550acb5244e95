"""`/metrics` of the IPU target and of the agent, scraped over HTTP after real traffic."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from agent.compile import compile_policies, compile_remote_routes, compile_services
from datapath.netns import call_in
from tests.datapath.conftest import Env, free_port, netns
from tests.datapath.test_dualstack import pod_obj
from tests.support.testbed_traffic import TcpServer, tcp_ask

NET, NET_ID = "blue", 100
VIP = "10.96.5.30"
GUARD = {"metadata": {"name": "db-guard", "namespace": "prod", "annotations": {
    "multinetwork.networking.x-k8s.io/pod-network": NET}},
    "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
             "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 8080}]}]}}


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, lbl), v in samples.items() if n == name and labels.items() <= dict(lbl).items())


def flood(netns: str, dst: str, port: int, count: int) -> None:
    """`count` connection attempts, one SYN each: a non-blocking connect sends
    the SYN at once, and closing before any answer sends nothing more."""
    for _ in range(count):
        s = call_in(netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        s.setblocking(False)
        s.connect_ex((dst, port))
        s.close()


@netns
def test_ipu_metrics_count_verdicts_per_network_and_policy_and_connections_per_backend(two_nodes: Env) -> None:
    env = two_nodes
    db = env.pod("n1", "db", NET_ID, "10.1.0.10/24")
    web1 = env.pod("n1", "web1", NET_ID, "10.1.0.11/24")
    web2 = env.pod("n2", "web2", NET_ID, "10.1.0.12/24")
    api = env.pod("n2", "api", NET_ID, "10.1.0.20/24", extra_routes=("10.96.5.0/24",))
    intruder = env.pod("n2", "intruder", NET_ID, "10.1.0.21/24")
    labels = {"db": "db", "web1": "web", "web2": "web", "api": "api", "intruder": "other"}
    objs = [pod_obj(p, NET, {"app": labels[p.name]}) for p in (db, web1, web2, api, intruder)]
    svc = {"metadata": {"name": "web", "namespace": "prod", "annotations": {
        "multinetwork.networking.x-k8s.io/pod-network": NET, "multinetwork.networking.x-k8s.io/service-vip": VIP}},
        "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
    slices = [{"metadata": {"namespace": "prod", "labels": {"kubernetes.io/service-name": "web",
                                                           "multinet.io/pod-network": NET}},
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
               "endpoints": [{"addresses": [web1.ip, web2.ip]}]}]
    vteps = {name: node.vtep for name, node in env.testbed.nodes.items()}
    for node, dp in env.datapaths.items():
        extra = compile_services([svc], slices, {NET: NET_ID}) if node == "n2" else []
        dp.replace_state(compile_remote_routes(objs, node, vteps, {NET: NET_ID}) + extra
                         + compile_policies([GUARD], objs, [], {NET: NET_ID}, node_name=node))
    servers = [TcpServer(p.netns, 8080, p.name) for p in (db, web1, web2)]
    allowed, denied, asked = 7, 53, 40
    try:
        assert all(tcp_ask(api.netns, db.ip, 8080) == "db" for _ in range(allowed))
        flood(intruder.netns, db.ip, 8080, denied)
        answers = [tcp_ask(api.netns, VIP, 80) for _ in range(asked)]
        assert None not in answers
    finally:
        for s in servers:
            s.close()
    time.sleep(0.5)  # the last denied SYNs reach the other node
    n1 = scrape(env.targets["n1"].metrics_url or "")
    # The denied flood shows exactly: one SYN per attempt; allowed counts new flows.
    assert value(n1, "multinet_ipu_network_packets_total", network="100", verdict="denied") == denied
    assert value(n1, "multinet_ipu_network_packets_total", network="100", verdict="allowed") == allowed
    assert value(n1, "multinet_ipu_policy_packets_total", policy="prod/db-guard", direction="ingress",
                 verdict="denied") == denied
    assert value(n1, "multinet_ipu_network_bytes_total", network="100", verdict="denied") >= denied * 40
    n2 = scrape(env.targets["n2"].metrics_url or "")
    assert value(n2, "multinet_ipu_service_packets_total", vip=VIP, port="80", protocol="TCP") == asked
    per_backend = {b: value(n2, "multinet_ipu_service_backend_connections_total", vip=VIP, backend=f"{b.ip}:8080")
                   for b in (web1, web2)}
    assert sum(per_backend.values()) == asked and all(per_backend.values()), per_backend
    assert value(n2, "multinet_ipu_p4runtime_updates_total", table="service", type="INSERT") == 1
    assert value(n2, "multinet_ipu_p4runtime_write_seconds_count") >= 1
    # The time the previous scrape's kernel read took.
    assert value(scrape(env.targets["n1"].metrics_url or ""), "multinet_ipu_counters_read_seconds") > 0
    # `multinet top` shows the same numbers, summed over both targets.
    argv = [sys.executable, "-m", "multinet.cli", "top", "--once",
            *(a for t in env.targets.values() for a in ("--metrics", t.metrics_url or ""))]
    view = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    row = next(line.split() for line in view.splitlines() if line.split()[:1] == ["100"])
    assert row[1] == str(allowed) and row[3] == str(denied), view
    assert any(VIP in line and line.split()[2] == str(asked) for line in view.splitlines()), view


@netns
def test_direct_counters_read_alone_equal_those_read_with_the_entries(two_nodes: Env) -> None:
    env = two_nodes
    client = env.pod("n1", "client", NET_ID, "10.1.0.2/24", extra_routes=("10.96.5.0/24",))
    backend = env.pod("n1", "backend", NET_ID, "10.1.0.3/24")
    svc = {"metadata": {"name": "web", "namespace": "prod", "annotations": {
        "multinetwork.networking.x-k8s.io/pod-network": NET, "multinetwork.networking.x-k8s.io/service-vip": VIP}},
        "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
    slices = [{"metadata": {"namespace": "prod", "labels": {"kubernetes.io/service-name": "web",
                                                           "multinet.io/pod-network": NET}},
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": [{"addresses": [backend.ip]}]}]
    dp = env.datapaths["n1"]
    dp.replace_state(compile_services([svc], slices, {NET: NET_ID}))
    server = TcpServer(backend.netns, 8080, "backend")
    try:
        assert all(tcp_ask(client.netns, VIP, 80) == "backend" for _ in range(5))
    finally:
        server.close()
    ((alone, counts),) = dp.client.read_counters("service")
    ((entry, with_entry),) = dp.client.read_with_counters("service")
    assert alone.key == entry.key and not alone.actions  # the key only, no backends
    assert counts == with_entry and counts[0] == 5
