"""EndpointSlices of a Service on a secondary network, on the real apiserver."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from tests.controller.controller_support import Kube
from podnetwork import names
from tests.controller.controller_support import FakeNodes, Networks, pod_manifest, pod_gated
from tests.support.wait import wait_for

pytestmark = pytest.mark.cluster
OURS = f"endpointslice.kubernetes.io/managed-by={names.ENDPOINTSLICE_MANAGED_BY}"


def slices(kube: Kube, namespace: str, service: str) -> list[Any]:
    return kube.discovery.list_namespaced_endpoint_slice(
        namespace, label_selector=f"{OURS},kubernetes.io/service-name={service}").items


def endpoints(kube: Kube, namespace: str, service: str) -> dict[str, bool]:
    return {ep.addresses[0]: bool(ep.conditions.ready) for s in slices(kube, namespace, service)
            for ep in s.endpoints or []}


def ungated(kube: Kube, namespace: str, name: str) -> bool:
    return not pod_gated(kube, namespace, name)


def test_service_on_secondary_network(kube: Kube, namespace: str, networks: Networks, nodes: FakeNodes) -> None:
    net = networks.ready_network("10.90.0.0/24")
    for name in ("a", "b"):
        body = pod_manifest(name, [{"podNetworkName": net}], nodes.pod_placement())
        body["metadata"]["labels"] = {"app": "web"}
        body["spec"]["containers"][0]["ports"] = [{"name": "http", "containerPort": 8080}]
        kube.core.create_namespaced_pod(namespace, body)  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
    kube.core.create_namespaced_service(namespace, {  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        "metadata": {"name": "web", "annotations": {names.POD_NETWORK_ANNOTATION: net}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    for name in ("a", "b"):
        wait_for(f"{name} ungated", functools.partial(ungated, kube, namespace, name))
    ips = {}
    for name in ("a", "b"):
        pod = kube.get_pod(namespace, name)
        assert pod is not None
        (alloc,) = json.loads(pod["metadata"]["annotations"][names.ALLOCATIONS_ANNOTATION])
        ips[name] = alloc["ips"][0].split("/")[0]
    wait_for("both endpoints, not ready", lambda: endpoints(kube, namespace, "web") == {ips["a"]: False, ips["b"]: False})
    (s,) = slices(kube, namespace, "web")
    assert s.metadata.labels[names.ENDPOINTSLICE_NETWORK_LABEL] == net
    assert [(p.name, p.port) for p in s.ports] == [("http", 8080)]

    kube.core.patch_namespaced_pod_status("a", namespace, {"status": {"conditions": [
        {"type": "Ready", "status": "True"}]}})
    wait_for("a ready", lambda: endpoints(kube, namespace, "web") == {ips["a"]: True, ips["b"]: False})
    kube.core.delete_namespaced_pod("b", namespace, grace_period_seconds=0)
    wait_for("b gone", lambda: endpoints(kube, namespace, "web") == {ips["a"]: True})
    kube.core.patch_namespaced_service("web", namespace, {"metadata": {"annotations": {
        names.POD_NETWORK_ANNOTATION: None}}})
    wait_for("our slices removed with the annotation", lambda: not slices(kube, namespace, "web"))


def test_service_gets_a_vip_from_its_network_service_range(kube: Kube, namespace: str, networks: Networks) -> None:
    import ipaddress

    params = networks.params({"topology": "L2", "ipv4": {"subnet": "10.91.0.0/24"}, "serviceCIDRs": ["10.191.0.0/28"]})
    net = networks.network(params)

    def vip(name: str) -> str | None:
        svc = kube.core.read_namespaced_service(name, namespace)
        assert svc.metadata is not None
        return (svc.metadata.annotations or {}).get(names.SERVICE_VIP_ANNOTATION)

    for name in ("one", "two"):
        kube.core.create_namespaced_service(namespace, {  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
            "metadata": {"name": name, "annotations": {names.POD_NETWORK_ANNOTATION: net}},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}})
    kube.core.create_namespaced_service(namespace, {  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        "metadata": {"name": "chosen", "annotations": {names.POD_NETWORK_ANNOTATION: net,
                                                       names.SERVICE_VIP_ANNOTATION: "10.191.0.9"}},
        "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}})
    vips = [wait_for(f"{n} VIP", functools.partial(vip, n)) for n in ("one", "two")]
    assert len(set(vips)) == 2
    assert all(ipaddress.ip_address(v) in ipaddress.ip_network("10.191.0.0/28") for v in vips), vips
    assert vip("chosen") == "10.191.0.9"  # a VIP the user wrote is kept
