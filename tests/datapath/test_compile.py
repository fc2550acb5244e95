"""Agent-side compilation of Kubernetes objects into entries (pure functions)."""

from __future__ import annotations

import json
from typing import Any

from agent.compile import compile_policies, compile_remote_routes, compile_services, pod_addresses
from datapath.entries import Exact, Lpm, Range, Ternary, ip
from datapath.pipeline import DIRECTION_EGRESS, DIRECTION_INGRESS
from podnetwork.allocations import Allocation, encode_allocations
from podnetwork.names import (ALLOCATIONS_ANNOTATION, ENDPOINTSLICE_NETWORK_LABEL, NETWORK_STATUS_ANNOTATION,
                              POD_NETWORK_ANNOTATION, SERVICE_VIP_ANNOTATION)

NETWORKS = {"blue": 100, "red": 200}


def pod(name: str, address: str, labels: dict[str, str] | None = None, node: str = "n1", ns: str = "prod",
        network: str = "blue", ports: dict[str, int] | None = None, phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "labels": labels or {}, "annotations": {
        ALLOCATIONS_ANNOTATION: encode_allocations((Allocation(network, "net1", NETWORKS[network], (f"{address}/24",)),))}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [
            {"name": n, "containerPort": p} for n, p in (ports or {}).items()]}]},
        "status": {"phase": phase}}


def netpol(spec: dict[str, Any], network: str = "blue", ns: str = "prod") -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": ns, "annotations": {POD_NETWORK_ANNOTATION: network}},
            "spec": spec}


def rules(entries: list[Any], direction: int) -> set[tuple[Any, Any, Any]]:
    return {(e.get("peer"), e.get("proto"), e.get("port")) for e in entries
            if e.table == "policy_rule" and e.get("direction") == Exact(direction)}


def test_network_status_wins_over_allocations() -> None:
    p = pod("a", "10.1.0.5")
    p["metadata"]["annotations"][NETWORK_STATUS_ANNOTATION] = json.dumps(
        [{"podNetworkName": "blue", "interfaceName": "net1", "ips": ["10.1.0.6/24", "fd00::6/64"]}])
    assert pod_addresses(p) == {"blue": ["10.1.0.6", "fd00::6"]}  # both families


def test_ipblock_except_becomes_prefixes_and_endport_a_range() -> None:
    pods = [pod("db", "10.1.0.10", {"app": "db"})]
    pol = netpol({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.200.0.0/24"]}}],
         "ports": [{"protocol": "UDP", "port": 5000, "endPort": 5010}]}]})
    got = rules(compile_policies([pol], pods, [], NETWORKS), DIRECTION_INGRESS)
    def covered(address: str) -> bool:
        return any(ip(address) & m.mask == m.value for m, _, _ in got)

    assert not covered("10.1.2.3") and not covered("10.200.0.7") and not covered("11.0.0.1")
    assert covered("10.2.0.1") and covered("10.200.1.1") and covered("10.255.255.255")
    assert {(p, r) for _, p, r in got} == {(Ternary(17, 0xFF), Range(5000, 5010))}


def test_selected_pods_are_isolated_and_unselected_are_not() -> None:
    pods = [pod("db", "10.1.0.10", {"app": "db"}), pod("web", "10.1.0.11", {"app": "web"})]
    pol = netpol({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": []})
    out = compile_policies([pol], pods, [], NETWORKS)
    members = [e for e in out if e.table == "policy_pod"]
    assert [m.get("pod_ip") for m in members] == [Exact(ip("10.1.0.10"))]
    assert not [e for e in out if e.table == "policy_rule"]  # isolated, nothing allowed


def test_policies_apply_only_on_their_network_and_namespace() -> None:
    pods = [pod("db", "10.1.0.10", {"app": "db"}), pod("dbred", "10.1.0.10", {"app": "db"}, network="red"),
            pod("dbdev", "10.1.0.12", {"app": "db"}, ns="dev")]
    out = compile_policies([netpol({"podSelector": {}, "ingress": [{}]})], pods, [], NETWORKS)
    members = {(e.get("network_id"), e.get("pod_ip")) for e in out if e.table == "policy_pod"}
    assert members == {(Exact(100), Exact(ip("10.1.0.10")))}
    assert rules(out, DIRECTION_INGRESS) == {(None, None, None)}  # `ingress: [{}]` allows everything


def test_named_ports_resolve_against_the_receiving_pod() -> None:
    pods = [pod("a", "10.1.0.2", {"app": "a"}, ports={"http": 8080}),
            pod("b", "10.1.0.3", {"app": "a"}, ports={"http": 9090}),
            pod("c", "10.1.0.4", {"app": "c"}, ports={"http": 7070})]
    ingress = netpol({"podSelector": {"matchLabels": {"app": "a"}},
                      "ingress": [{"ports": [{"port": "http"}]}]})
    out = compile_policies([ingress], pods, [], NETWORKS)
    groups = {e.get("pod_ip"): e.actions[0].params[0] for e in out if e.table == "policy_pod"}
    assert len(set(groups.values())) == 2  # different ports, different groups
    egress = netpol({"podSelector": {"matchLabels": {"app": "c"}}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "a"}}}], "ports": [{"port": "http"}]}]})
    got = rules(compile_policies([egress], pods, [], NETWORKS), DIRECTION_EGRESS)
    assert got == {(Ternary(ip("10.1.0.2"), 0xFFFFFFFF), Ternary(6, 0xFF), Range(8080, 8080)),
                   (Ternary(ip("10.1.0.3"), 0xFFFFFFFF), Ternary(6, 0xFF), Range(9090, 9090))}


def test_egress_named_port_without_to_resolves_against_each_destination_pod() -> None:
    pods = [pod("a", "10.1.0.2", {"app": "a"}, ports={"http": 8080}),
            pod("b", "10.2.0.3", {"app": "b"}, ports={"http": 9090}),
            pod("c", "10.1.0.4", {"app": "c"})]
    anywhere = netpol({"podSelector": {"matchLabels": {"app": "c"}}, "policyTypes": ["Egress"],
                       "egress": [{"ports": [{"port": "http"}]}]})
    got = rules(compile_policies([anywhere], pods, [], NETWORKS), DIRECTION_EGRESS)
    assert got == {(Ternary(ip("10.1.0.2"), 0xFFFFFFFF), Ternary(6, 0xFF), Range(8080, 8080)),
                   (Ternary(ip("10.2.0.3"), 0xFFFFFFFF), Ternary(6, 0xFF), Range(9090, 9090))}
    block = netpol({"podSelector": {"matchLabels": {"app": "c"}}, "policyTypes": ["Egress"],
                    "egress": [{"to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}], "ports": [{"port": "http"}]}]})
    got = rules(compile_policies([block], pods, [], NETWORKS), DIRECTION_EGRESS)
    assert got == {(Ternary(ip("10.1.0.2"), 0xFFFFFFFF), Ternary(6, 0xFF), Range(8080, 8080))}


def test_empty_egress_list_without_policy_types_isolates_only_ingress() -> None:
    # The API server defaults policyTypes to Ingress, plus Egress only when
    # there are egress rules: `egress: []` alone does not isolate egress.
    pods = [pod("db", "10.1.0.10", {"app": "db"})]
    out = compile_policies([netpol({"podSelector": {}, "ingress": [{}], "egress": []})], pods, [], NETWORKS)
    assert {e.get("direction") for e in out if e.table == "policy_pod"} == {Exact(DIRECTION_INGRESS)}


def test_pods_with_the_same_policies_share_a_group_and_node_filter() -> None:
    pods = [pod(f"p{i}", f"10.1.0.{i + 2}", {"app": "x"}, node="n1" if i < 3 else "n2") for i in range(5)]
    pols = [netpol({"podSelector": {"matchLabels": {"app": "x"}},
                    "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 80 + i}]}]}) for i in range(10)]
    out = compile_policies(pols, pods, [], NETWORKS, node_name="n1")
    members = [e for e in out if e.table == "policy_pod"]
    assert len(members) == 3 and len({m.actions[0].params[0] for m in members}) == 1
    assert len([e for e in out if e.table == "policy_rule"]) == 5 * 10  # 5 peers x 10 ports, once


def test_services_use_ready_endpoints_of_their_network() -> None:
    svc: dict[str, Any] = {"metadata": {"name": "web", "namespace": "prod",
                        "annotations": {POD_NETWORK_ANNOTATION: "blue", SERVICE_VIP_ANNOTATION: "10.96.0.5"}},
           "spec": {"clusterIP": "10.0.0.9", "ports": [{"name": "http", "port": 80},
                                                       {"name": "dns", "port": 53, "protocol": "UDP"}]}}
    slices: list[dict[str, Any]] = [
        {"metadata": {"namespace": "prod", "labels": {"kubernetes.io/service-name": "web",
                                                      ENDPOINTSLICE_NETWORK_LABEL: "blue"}},
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
         "endpoints": [{"addresses": ["10.1.0.2"], "conditions": {"ready": True}},
                       {"addresses": ["10.1.0.3"], "conditions": {"ready": False}},
                       {"addresses": ["10.1.0.4"]}]},
        {"metadata": {"namespace": "prod", "labels": {"kubernetes.io/service-name": "web",
                                                      ENDPOINTSLICE_NETWORK_LABEL: "red"}},
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
         "endpoints": [{"addresses": ["10.1.0.99"]}]},
    ]
    (e,) = compile_services([svc], slices, NETWORKS)  # the UDP port has no endpoints
    assert e.get("vip") == Exact(ip("10.96.0.5")) and e.get("network_id") == Exact(100)
    assert [c.params for c in e.actions] == [(ip("10.1.0.2"), 8080), (ip("10.1.0.4"), 8080)]
    del svc["metadata"]["annotations"][SERVICE_VIP_ANNOTATION]
    (e,) = compile_services([svc], slices, NETWORKS)
    assert e.get("vip") == Exact(ip("10.0.0.9"))
    svc["metadata"]["annotations"][POD_NETWORK_ANNOTATION] = "green"  # unknown network
    assert compile_services([svc], slices, NETWORKS) == []


def test_remote_routes_point_at_the_pods_node() -> None:
    pods = [pod("a", "10.1.0.2", node="n1"), pod("b", "10.1.0.3", node="n2"),
            pod("gone", "10.1.0.4", node="n2", phase="Succeeded")]
    (e,) = compile_remote_routes(pods, "n1", {"n1": "10.254.0.1", "n2": "10.254.0.2"}, NETWORKS)
    assert e.actions[0].params == (ip("10.254.0.2"),)


def test_a_dual_stack_pod_on_another_node_gets_a_host_route_per_family_into_the_tunnel() -> None:
    """The pod as the agent annotates it on a real node (network-status, both families): an
    IPv4 /32 in `route` and an IPv6 /128 in `route6`, both toward the node's IPv4 VTEP. With
    no route6 entry the local IPU neither routes the address nor answers the local pods'
    neighbour solicitations for it, and they read "no route to host" (the real-node
    conformance run before IPv6 reached the pipeline)."""
    remote = pod("d1", "10.235.0.3", node="n2")
    remote["metadata"]["annotations"][NETWORK_STATUS_ANNOTATION] = json.dumps(
        [{"podNetworkName": "blue", "interfaceName": "net1", "ips": ["10.235.0.3/24", "fd00:235::3/64"]}])
    found = {(e.table, str(e.get("dst"))): e.actions for e in
             compile_remote_routes([remote], "n1", {"n1": "10.254.0.1", "n2": "10.254.0.2"}, NETWORKS)}
    want = {("route", str(Lpm(ip("10.235.0.3"), 32))), ("route6", str(Lpm(ip("fd00:235::3"), 128)))}
    assert set(found) == want, found
    for actions in found.values():
        assert [(a.name, a.params) for a in actions] == [("to_tunnel", (ip("10.254.0.2"),))]


def test_compile_node_combines_routes_services_and_policy() -> None:
    from agent.compile import compile_node

    nodes = [{"metadata": {"name": n}, "status": {"addresses": [{"type": "Hostname", "address": n},
                                                                 {"type": "InternalIP", "address": f"10.254.0.{i}"}]}}
             for i, n in enumerate(["n1", "n2"], start=1)]
    pods = [pod("a", "10.1.0.2", {"app": "a"}, node="n1"), pod("b", "10.1.0.3", {"app": "b"}, node="n2")]
    pol = netpol({"podSelector": {"matchLabels": {"app": "a"}}, "ingress": [{"from": [{"podSelector": {}}]}]})
    out = compile_node("n1", pods=pods, namespaces=[], nodes=nodes, services=[], slices=[], policies=[pol],
                       networks=NETWORKS)
    assert sorted({e.table for e in out}) == ["policy_pod", "policy_rule", "route"]
    (route,) = [e for e in out if e.table == "route"]
    assert route.actions[0].params == (ip("10.254.0.2"),)


def test_group_ids_are_stable_and_collisions_are_salted() -> None:
    import ipaddress

    from agent.compile.policy import Groups, Rule, group_id

    one = frozenset({Rule(ipaddress.IPv4Network("10.0.0.0/8"), 6, (80, 80))})
    two = frozenset({Rule(ipaddress.IPv4Network("10.0.0.0/8"), 6, (81, 81))})
    assert group_id(one, 0) == group_id(frozenset(set(one)), 0) != group_id(one, 1)
    groups = Groups()
    groups.by_id[(0, group_id(one, 0))] = two  # pretend `two` took `one`'s id first
    assert groups.id(one, 0) == group_id(one, 0, salt=1)


def test_network_ids_come_from_allocations() -> None:
    from agent.compile import network_ids

    pods = [pod("a", "10.1.0.2"), pod("b", "10.1.0.3", network="red"), {"metadata": {"annotations": {
        ALLOCATIONS_ANNOTATION: "not json"}}}]
    assert network_ids(pods) == {"blue": 100, "red": 200}
