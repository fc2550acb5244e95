"""Cluster-wide IPAM under concurrency, and across a controller crash."""

from __future__ import annotations

import ipaddress
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client
from tests.controller.controller_support import Networks, allocations_of
from tests.controller.controller_support import ControllerProcess, FakeNodes, pod_manifest
from tests.support.wait import wait_for

from tests.controller.controller_support import Kube
from podnetwork import names

pytestmark = pytest.mark.cluster
PODS = 200


def create_pods(kube: Kube, namespace: str, nodes: FakeNodes, nets: list[str], count: int) -> None:
    networks = [{"podNetworkName": n} for n in nets]

    def one(i: int) -> None:
        kube.core.create_namespaced_pod(namespace, pod_manifest(f"p{i:03d}", networks, nodes.pod_placement()))  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(count)))


def name_of(pod: client.V1Pod) -> str:
    assert pod.metadata is not None and pod.metadata.name is not None  # the apiserver names every pod
    return pod.metadata.name


def annotations_of(pod: client.V1Pod) -> dict[str, str]:
    assert pod.metadata is not None
    return pod.metadata.annotations or {}


def gated(pod: client.V1Pod) -> bool:
    assert pod.spec is not None  # the apiserver returns every pod with its spec
    return any(g.name == names.SCHEDULING_GATE for g in pod.spec.scheduling_gates or [])


def gated_count(kube: Kube, namespace: str) -> int:
    pods = kube.core.list_namespaced_pod(namespace).items
    return sum(1 for p in pods if gated(p))


def claims(kube: Kube, network: str) -> list[dict[str, Any]]:
    return [c for c in kube.list_cluster(names.PARAMS_GROUP, names.IP_ALLOCATION_PLURAL)
            if c["spec"]["podNetworkName"] == network]


def two_networks(networks: Networks) -> tuple[str, str, list[ipaddress.IPv4Network]]:
    excludes = ["10.80.0.0/26", "10.80.1.128/25"]
    a = networks.ready_network("10.80.0.0/23", gateway="10.80.0.1", excludes=excludes)
    b = networks.ready_network("10.81.0.0/24")  # 254 addresses for 200 pods
    return a, b, [ipaddress.IPv4Network(e) for e in excludes]


def check_unique(kube: Kube, namespace: str, a: str, b: str, excludes: list[ipaddress.IPv4Network]) -> None:
    seen: dict[str, set[str]] = {a: set(), b: set()}
    pods = kube.core.list_namespaced_pod(namespace).items
    assert len(pods) == PODS
    for pod in pods:
        allocs = json.loads(annotations_of(pod)[names.ALLOCATIONS_ANNOTATION])
        assert [x["podNetworkName"] for x in allocs] == [a, b]
        for alloc in allocs:
            (ip,) = alloc["ips"]
            iface = ipaddress.ip_interface(ip)
            seen[alloc["podNetworkName"]].add(str(iface.ip))
            if alloc["podNetworkName"] == a:
                assert iface.network == ipaddress.ip_network("10.80.0.0/23")
                assert not any(iface.ip in e for e in excludes) and str(iface.ip) != "10.80.0.1"
            else:
                assert iface.network == ipaddress.ip_network("10.81.0.0/24")
    assert len(seen[a]) == PODS and len(seen[b]) == PODS
    # Exactly one claim object per handed-out address: nothing lost, nothing duplicated.
    for net in (a, b):
        held = claims(kube, net)
        assert sorted(c["spec"]["address"] for c in held) == sorted(seen[net])


def delete_all_and_check_released(kube: Kube, namespace: str, a: str, b: str) -> None:
    kube.core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
    wait_for("every allocation released", lambda: not claims(kube, a) and not claims(kube, b), timeout=120)


def test_concurrent_pods_get_unique_addresses(kube: Kube, namespace: str, networks: Networks,
                                              nodes: FakeNodes) -> None:
    a, b, excludes = two_networks(networks)
    create_pods(kube, namespace, nodes, [a, b], PODS)
    wait_for("all gates lifted", lambda: gated_count(kube, namespace) == 0, timeout=300, interval=1)
    check_unique(kube, namespace, a, b, excludes)
    delete_all_and_check_released(kube, namespace, a, b)


def test_controller_killed_midway_loses_and_duplicates_nothing(
        kube: Kube, namespace: str, networks: Networks, nodes: FakeNodes, controller: ControllerProcess) -> None:
    controller.require_own()
    a, b, excludes = two_networks(networks)
    create_pods(kube, namespace, nodes, [a, b], PODS)
    # Kill it while it is busy: some pods done, others not.
    wait_for("some pods ungated", lambda: 0 < PODS - gated_count(kube, namespace), timeout=120, interval=0.1)
    controller.kill()
    done = {name_of(p): annotations_of(p)[names.ALLOCATIONS_ANNOTATION]
            for p in kube.core.list_namespaced_pod(namespace).items
            if names.ALLOCATIONS_ANNOTATION in annotations_of(p)}
    controller.start()
    wait_for("all gates lifted after restart", lambda: gated_count(kube, namespace) == 0, timeout=300, interval=1)
    check_unique(kube, namespace, a, b, excludes)
    # Pods that were done before the kill kept exactly their addresses.
    for name, text in done.items():
        assert json.dumps(allocations_of(kube, namespace, name), separators=(",", ":")) == text
    delete_all_and_check_released(kube, namespace, a, b)
    if len(done) == PODS:
        pytest.skip("the controller finished every pod before it was killed: restart path not exercised")


def test_sweep_frees_allocations_of_vanished_pods(kube: Kube, namespace: str, networks: Networks,
                                                  nodes: FakeNodes, controller: ControllerProcess) -> None:
    controller.require_own()
    net = networks.ready_network("10.82.0.0/24")
    kube.core.create_namespaced_pod(namespace, pod_manifest("p", [{"podNetworkName": net}], nodes.pod_placement()))  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
    wait_for("allocated", lambda: claims(kube, net))
    # Delete the pod while the controller is down: only the sweep can notice.
    controller.kill()
    kube.core.delete_namespaced_pod("p", namespace, grace_period_seconds=0)
    controller.start()
    wait_for("sweep freed the address", lambda: not claims(kube, net), timeout=60)
