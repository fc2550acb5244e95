"""A Service on a dual-stack secondary network, on real nodes: the controller
gives it one VIP per family from the network's service ranges
(`ipFamilyPolicy: PreferDualStack`), and each VIP balances over the backends
on both nodes, the client's own pod among them (hairpin)."""

from __future__ import annotations

import ipaddress
import json
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from podnetwork import names
from tests.support.nodes import Cluster, netexec_pod
from tests.support.wait import wait_for

NAMESPACE = "families-test"
V4_RANGE, V6_RANGE = "10.162.0.0/24", "fd00:162::/120"


@pytest.fixture(scope="module")
def service(real_nodes: Cluster) -> Iterator[Cluster]:
    c = real_nodes
    deadline = time.monotonic() + 90
    while c.run_kubectl("get", "podnetworks", "default").returncode != 0:
        assert time.monotonic() < deadline, "the controller never installed the PodNetwork API"
        time.sleep(1)
    c.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": f"{names.PARAMS_GROUP}/{names.PARAMS_VERSION}", "kind": names.PARAMS_KIND,
         "metadata": {"name": "userplane-ds"}, "spec": {
             "topology": "L2", "ipv4": {"subnet": "10.62.0.0/24", "gateway": "10.62.0.1"},
             "ipv6": {"subnet": "fd00:62::/64", "gateway": "fd00:62::1"}, "serviceCIDRs": [V4_RANGE, V6_RANGE]}},
        {"apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.POD_NETWORK_KIND,
         "metadata": {"name": "userplane-ds"}, "spec": {"enabled": True, "provider": names.PROVIDER, "parametersRefs": [
             {"group": names.PARAMS_GROUP, "kind": names.PARAMS_KIND, "name": "userplane-ds"}]}},
    )
    c.apply({"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "upf", "namespace": NAMESPACE, "annotations": {names.POD_NETWORK_ANNOTATION: "userplane-ds"}},
        "spec": {"ipFamilyPolicy": "PreferDualStack", "selector": {"tier": "upf"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    networks = json.dumps([{"podNetworkName": "default"}, {"podNetworkName": "userplane-ds"}])
    c.apply(*(netexec_pod(name, node, NAMESPACE, networks, labels={"app": name, "tier": "upf"})
              for name, node in (("upf-0", "node1"), ("upf-1", "node2"), ("upf-2", "node2"))))
    for name in ("upf-0", "upf-1", "upf-2"):
        c.kubectl("wait", "-n", NAMESPACE, "--for=condition=Ready", f"pod/{name}", "--timeout=180s")
    yield c


def vips(c: Cluster) -> list[str]:
    annotations = c.json("get", "service", "-n", NAMESPACE, "upf")["metadata"].get("annotations") or {}
    text = annotations.get(names.SERVICE_VIP_ANNOTATION, "")
    return text.split(",") if text else []


def test_each_family_gets_a_vip_from_its_service_range(service: Cluster) -> None:
    v4, v6 = (ipaddress.ip_address(a) for a in wait_for("two VIPs", lambda: vips(service)))
    assert v4 in ipaddress.ip_network(V4_RANGE) and v6 in ipaddress.ip_network(V6_RANGE)


@pytest.mark.parametrize("family", [4, 6])
def test_each_vip_spreads_over_the_backends_on_both_nodes(service: Cluster, family: int) -> None:
    vip = next(a for a in wait_for("two VIPs", lambda: vips(service)) if ipaddress.ip_address(a).version == family)
    answer = json.loads(service.proxy_get(NAMESPACE, "upf-0", 8080,
                                          f"/dial?request=hostname&protocol=http&host={vip}&port=80&tries=24"))
    # upf-0 asks from node1: upf-1 and upf-2 answer from node2, upf-0 itself through its own VIP.
    assert set(Counter(answer["responses"])) == {"upf-0", "upf-1", "upf-2"}, answer
