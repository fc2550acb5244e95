"""Address-less (layer 2) networks and per-family Service VIPs, on the real apiserver.

A PodNetwork without parameters, or NetworkParams without ipv4/ipv6, attaches
pods with no address on a network id of its own; Services and NetworkPolicies
on such a network are refused with an Event. A Service on a dual-stack network
gets one VIP per family its ipFamilyPolicy asks for.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

import pytest
from kubernetes import client

from podnetwork import names
from tests.controller.controller_support import (FakeNodes, Kube, Networks, allocations_of, condition, events_of,
                                                 pod_gated)
from tests.support.wait import wait_for

pytestmark = pytest.mark.cluster
OURS = f"endpointslice.kubernetes.io/managed-by={names.ENDPOINTSLICE_MANAGED_BY}"


def network_id_of(kube: Kube, network: str) -> int | None:
    obj = kube.get_cluster(names.GROUP, names.POD_NETWORK_PLURAL, network) or {}
    text = (obj["metadata"].get("annotations") or {}).get(names.NETWORK_ID_ANNOTATION)
    return int(text) if text else None


def ungated_allocations(kube: Kube, namespace: str, pod: str) -> list[dict[str, Any]]:
    wait_for(f"{pod} ungated", lambda: not pod_gated(kube, namespace, pod))
    allocations = allocations_of(kube, namespace, pod)
    assert allocations is not None
    return allocations


def test_pods_on_a_network_without_parameters_attach_with_no_address(
        kube: Kube, namespace: str, networks: Networks, make_pod: Any) -> None:
    net, other = networks.network(), networks.network()
    wait_for("Ready without parameters", lambda: condition(kube, net, "Ready") == "True")
    ids = [wait_for(f"{n}'s network id", functools.partial(network_id_of, kube, n)) for n in (net, other)]
    assert ids[0] != ids[1], "two address-less networks share a VXLAN segment"
    claim = kube.custom.get_cluster_custom_object(names.PARAMS_GROUP, names.PARAMS_VERSION,
                                                  names.NETWORK_ID_CLAIM_PLURAL, f"vni-{ids[0]}")
    assert claim["spec"] == {"networkId": ids[0], "podNetwork": net}
    for pod in ("du1", "du2"):
        make_pod(pod, [{"podNetworkName": net}])
    for pod in ("du1", "du2"):
        (entry,) = ungated_allocations(kube, namespace, pod)
        assert (entry["podNetworkName"], entry["interfaceName"], entry["networkId"], entry["ips"]) == \
            (net, "net1", ids[0], [])
    # The id stays with the network across resyncs, and a user's edit of it is undone.
    kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, net, {"metadata": {"annotations": {
        names.NETWORK_ID_ANNOTATION: "77"}}})
    wait_for("the held id back", lambda: network_id_of(kube, net) == ids[0])


def test_parameters_without_families_attach_with_their_network_id(
        kube: Kube, namespace: str, networks: Networks, make_pod: Any) -> None:
    params = networks.params({"topology": "L2", "mtu": 9000})
    net = networks.network(params)
    wait_for("ParamsReady", lambda: condition(kube, net, "ParamsReady") == "True")
    make_pod("p", [{"podNetworkName": net, "interfaceName": "fh0"}])
    (entry,) = ungated_allocations(kube, namespace, "p")
    obj = kube.get_cluster(names.PARAMS_GROUP, names.PARAMS_PLURAL, params)
    assert obj is not None
    assert (entry["interfaceName"], entry["networkId"], entry["ips"]) == ("fh0", obj["status"]["networkId"], [])
    assert not kube.list_cluster(names.PARAMS_GROUP, names.IP_ALLOCATION_PLURAL) or all(
        a["spec"]["podNetworkName"] != net for a in kube.list_cluster(names.PARAMS_GROUP, names.IP_ALLOCATION_PLURAL))


def test_services_and_policies_on_an_address_less_network_are_refused_with_an_event(
        kube: Kube, namespace: str, networks: Networks, make_pod: Any) -> None:
    net = networks.network()
    wait_for("network id", functools.partial(network_id_of, kube, net))
    pod = make_pod("du", [{"podNetworkName": net}])
    kube.core.patch_namespaced_pod(pod["metadata"]["name"], namespace, {"metadata": {"labels": {"app": "du"}}})
    ungated_allocations(kube, namespace, "du")
    kube.core.create_namespaced_service(namespace, {  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        "metadata": {"name": "fh", "annotations": {names.POD_NETWORK_ANNOTATION: net}},
        "spec": {"selector": {"app": "du"}, "ports": [{"port": 80}]}})
    client.NetworkingV1Api(kube.api).create_namespaced_network_policy(namespace, {  # type: ignore[arg-type]  # plain dict
        "metadata": {"name": "deny", "annotations": {names.POD_NETWORK_ANNOTATION: net}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    for name in ("fh", "deny"):
        said = wait_for(f"an Event on {name}", lambda n=name: [  # type: ignore[misc]  # default binds the loop value
            e for e in events_of(kube, namespace, n) if e.startswith("AddressLessNetwork:")])
        assert f"PodNetwork '{net}' has no addresses" in said[0], said
    svc = kube.core.read_namespaced_service("fh", namespace)
    assert svc.metadata is not None and names.SERVICE_VIP_ANNOTATION not in (svc.metadata.annotations or {})
    assert not kube.discovery.list_namespaced_endpoint_slice(
        namespace, label_selector=f"{OURS},kubernetes.io/service-name=fh").items
    # A Service on an addressed network in the same namespace is served as ever.
    addressed = networks.network(networks.params({"topology": "L2", "ipv4": {"subnet": "10.93.0.0/24"},
                                                  "serviceCIDRs": ["10.193.0.0/28"]}))
    wait_for("addressed network Ready", lambda: condition(kube, addressed, "Ready") == "True")
    kube.core.create_namespaced_service(namespace, {  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        "metadata": {"name": "ok", "annotations": {names.POD_NETWORK_ANNOTATION: addressed}},
        "spec": {"selector": {"app": "du"}, "ports": [{"port": 80}]}})
    wait_for("the addressed one's VIP", lambda: vip_of(kube, namespace, "ok"))
    assert not [e for e in events_of(kube, namespace, "ok") if "AddressLessNetwork" in e]


def vip_of(kube: Kube, namespace: str, name: str) -> str | None:
    svc = kube.core.read_namespaced_service(name, namespace)
    assert svc.metadata is not None
    return (svc.metadata.annotations or {}).get(names.SERVICE_VIP_ANNOTATION)


def service(kube: Kube, namespace: str, name: str, network: str, policy: str, headless: bool = False) -> None:
    spec: dict[str, Any] = {"selector": {"app": name}, "ports": [{"port": 80}], "ipFamilyPolicy": policy}
    if headless:
        spec["clusterIP"] = "None"
    kube.core.create_namespaced_service(namespace, {  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        "metadata": {"name": name, "annotations": {names.POD_NETWORK_ANNOTATION: network}}, "spec": spec})


def test_a_service_on_a_dual_stack_network_gets_a_vip_per_family(
        kube: Kube, namespace: str, networks: Networks, nodes: FakeNodes) -> None:
    dual = networks.network(networks.params({
        "topology": "L2", "ipv4": {"subnet": "10.94.0.0/24"}, "ipv6": {"subnet": "fd00:94::/64"},
        "serviceCIDRs": ["10.194.0.0/28", "fd00:194::/120"]}))
    single = networks.network(networks.params({
        "topology": "L2", "ipv4": {"subnet": "10.95.0.0/24"}, "serviceCIDRs": ["10.195.0.0/28"]}))
    for net in (dual, single):
        wait_for(f"{net} Ready", lambda n=net: condition(kube, n, "Ready") == "True")  # type: ignore[misc]
    service(kube, namespace, "both", dual, "PreferDualStack")
    service(kube, namespace, "one", dual, "SingleStack")
    service(kube, namespace, "prefer", single, "PreferDualStack")
    both = wait_for("two VIPs", functools.partial(vip_of, kube, namespace, "both")).split(",")
    v4, v6 = (ipaddress.ip_address(a) for a in both)
    assert v4 in ipaddress.ip_network("10.194.0.0/28") and v6 in ipaddress.ip_network("fd00:194::/120"), both
    # The apiserver defaults ipFamilies from the cluster's ranges (IPv4 here): SingleStack takes the first.
    one = wait_for("one VIP", functools.partial(vip_of, kube, namespace, "one"))
    assert "," not in one and ipaddress.ip_address(one) in ipaddress.ip_network("10.194.0.0/28"), one
    # Moved to dual stack, it gains the other family's VIP; the first one stays its primary.
    kube.core.patch_namespaced_service("one", namespace, {"spec": {"ipFamilyPolicy": "PreferDualStack"}})
    upgraded = wait_for("a second VIP after the move to PreferDualStack", lambda: (
        lambda v: v if v and "," in v else None)(vip_of(kube, namespace, "one"))).split(",")
    assert upgraded[0] == one and ipaddress.ip_address(upgraded[1]) in ipaddress.ip_network("fd00:194::/120"), upgraded
    prefer = wait_for("one VIP on the single-stack network", functools.partial(vip_of, kube, namespace, "prefer"))
    assert ipaddress.ip_address(prefer) in ipaddress.ip_network("10.195.0.0/28"), prefer
    # RequireDualStack: this cluster's own service range is IPv4 only, so the apiserver refuses
    # it before the controller sees it (the controller's own refusal, for a single-stack
    # secondary network on a dual-stack cluster, is test_controller_services_unit's).
    with pytest.raises(client.ApiException) as refused:
        service(kube, namespace, "require", dual, "RequireDualStack", headless=True)
    assert refused.value.status == 422 and "not configured for dual-stack" in str(refused.value.body)
