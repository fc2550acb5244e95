"""EndpointSlice computation for Services on a secondary network."""

from __future__ import annotations

import json
from typing import Any

from controller.endpoints import MAX_ENDPOINTS, desired_slices, resolve_ports
from podnetwork import names


def pod(name: str, ips: list[str], labels: dict[str, str] | None = None, ready: bool = True,
        port_name: str = "http", port: int = 8080, network: str = "blue", **extra: Any) -> dict[str, Any]:
    allocs = [{"podNetworkName": network, "interfaceName": "net1", "networkId": 5, "ips": ips,
               "isDefaultGW4": False, "isDefaultGW6": False}]
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}", "labels": labels or {"app": "x"},
                     "annotations": {names.ALLOCATIONS_ANNOTATION: json.dumps(allocs)}, **extra},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [
            {"name": port_name, "containerPort": port, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


SERVICE = {"metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid",
                        "annotations": {names.POD_NETWORK_ANNOTATION: "blue"}},
           "spec": {"selector": {"app": "x"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}}


def test_addresses_on_the_network_with_named_ports_resolved() -> None:
    slices = desired_slices(SERVICE, "blue", [pod("a", ["10.0.0.5/24", "fd00::5/64"]), pod("b", ["10.0.0.6/24"], ready=False)])
    by_family = {s["addressType"]: s for s in slices}
    v4 = by_family["IPv4"]
    assert [e["addresses"] for e in v4["endpoints"]] == [["10.0.0.5"], ["10.0.0.6"]]
    assert [e["conditions"]["ready"] for e in v4["endpoints"]] == [True, False]
    assert v4["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    assert v4["metadata"]["labels"] == {"endpointslice.kubernetes.io/managed-by": names.ENDPOINTSLICE_MANAGED_BY,
                                        "kubernetes.io/service-name": "web",
                                        names.ENDPOINTSLICE_NETWORK_LABEL: "blue"}
    assert [e["addresses"] for e in by_family["IPv6"]["endpoints"]] == [["fd00::5"]]


def test_pods_disagreeing_on_named_port_split_slices() -> None:
    slices = desired_slices(SERVICE, "blue", [pod("a", ["10.0.0.5/24"]), pod("b", ["10.0.0.6/24"], port=9090)])
    assert sorted(s["ports"][0]["port"] for s in slices) == [8080, 9090]


def test_unselected_other_network_and_missing_port_left_out() -> None:
    pods = [pod("a", ["10.0.0.5/24"], labels={"app": "y"}), pod("b", ["10.0.0.6/24"], network="red"),
            pod("c", ["10.0.0.7/24"], port_name="other")]
    assert desired_slices(SERVICE, "blue", pods) == []


def test_terminating_pod_not_ready_but_serving() -> None:
    (s,) = desired_slices(SERVICE, "blue", [pod("a", ["10.0.0.5/24"], deletionTimestamp="2026-01-01T00:00:00Z")])
    assert s["endpoints"][0]["conditions"] == {"ready": False, "serving": True, "terminating": True}


def test_chunks_and_stable_names() -> None:
    pods = [pod(f"p{i:03d}", [f"10.0.{i // 200}.{i % 200 + 1}/16"]) for i in range(MAX_ENDPOINTS + 5)]
    first = desired_slices(SERVICE, "blue", pods)
    assert [len(s["endpoints"]) for s in first] == [MAX_ENDPOINTS, 5]
    again = desired_slices(SERVICE, "blue", list(reversed(pods)))
    assert [s["metadata"]["name"] for s in again] == [s["metadata"]["name"] for s in first]
    assert again == first


def test_numeric_and_default_target_ports() -> None:
    p = pod("a", [])
    assert resolve_ports([{"port": 80}], p) == (("", 80, "TCP"),)
    assert resolve_ports([{"name": "u", "port": 53, "targetPort": 5353, "protocol": "UDP"}], p) == (("u", 5353, "UDP"),)
    assert resolve_ports([{"port": 80, "targetPort": "missing"}], p) is None
