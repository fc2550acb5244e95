"""PodNetworksStaticValidation: KEP-3698 "Static validations" and "Auto-population".

Pods are sent with server-side dry run (admission runs, nothing is stored).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from suite.binding import Binding
from suite.fixtures import PodMaker
from suite.kube import refusal, unique
from suite.networks import Networks

pytestmark = pytest.mark.feature("PodNetworksStaticValidation")


def raw(entries: list[dict[str, Any]]) -> str:
    return json.dumps(entries)


def refused(pods: PodMaker, namespace: str, networks: str, **spec: Any) -> str:
    with pytest.raises(ApiException) as err:
        pods.create(namespace, unique("p"), networks, dry_run=True, **spec)
    assert err.value.status in (400, 403, 422), err.value.body
    return str(refusal(err.value).get("message", ""))


@pytest.fixture
def net(networks: Networks) -> str:
    name: str = networks.create()["metadata"]["name"]
    return name


@pytest.fixture
def other(networks: Networks) -> str:
    name: str = networks.create(index=1)["metadata"]["name"]
    return name


def test_both_names_in_one_entry(pods: PodMaker, namespace: str, net: str) -> None:
    message = refused(pods, namespace, raw([{"podNetworkName": net, "podNetworkAttachmentName": "x"}]))
    assert "podNetworkAttachmentName" in message or "podNetworkName" in message


def test_neither_name_in_an_entry(pods: PodMaker, namespace: str) -> None:
    assert "podNetworkName" in refused(pods, namespace, raw([{"interfaceName": "net1"}]))


def test_same_network_twice(pods: PodMaker, namespace: str, net: str) -> None:
    message = refused(pods, namespace, raw([{"podNetworkName": net, "interfaceName": "net1"},
                                            {"podNetworkName": net, "interfaceName": "net2"}]))
    assert net in message


def test_duplicate_interface_names(pods: PodMaker, namespace: str, net: str, other: str) -> None:
    message = refused(pods, namespace, raw([{"podNetworkName": net, "interfaceName": "net1"},
                                            {"podNetworkName": other, "interfaceName": "net1"}]))
    assert "interfaceName" in message


@pytest.mark.parametrize("ifname", ["x" * 16, "a/b", "a b", ".", ".."])
def test_invalid_interface_name(pods: PodMaker, namespace: str, net: str, ifname: str) -> None:
    assert "interfaceName" in refused(pods, namespace, raw([{"podNetworkName": net, "interfaceName": ifname}]))


@pytest.mark.parametrize("flag", ["isDefaultGW4", "isDefaultGW6"])
def test_two_default_gateways(pods: PodMaker, namespace: str, net: str, other: str, flag: str) -> None:
    message = refused(pods, namespace, raw([{"podNetworkName": net, flag: True}, {"podNetworkName": other, flag: True}]))
    assert flag in message


@pytest.mark.parametrize("ifname", ["net0", "eth1"])
def test_default_network_interface_other_than_eth0(pods: PodMaker, namespace: str, ifname: str) -> None:
    message = refused(pods, namespace, raw([{"podNetworkName": "default", "interfaceName": ifname}]))
    assert "interfaceName" in message


def test_default_network_interface_eth0_or_unset_is_admitted(
    pods: PodMaker, binding: Binding, namespace: str, net: str,
) -> None:
    for entries in ([{"podNetworkName": "default", "interfaceName": "eth0"}, {"podNetworkName": net}],
                    [{"podNetworkName": "default"}, {"podNetworkName": net, "interfaceName": "net1"}]):
        created = pods.create(namespace, unique("p"), raw(entries), dry_run=True)
        assert created.metadata.annotations[binding.networks_annotation]


def test_host_network_pod_with_networks(pods: PodMaker, namespace: str, net: str) -> None:
    assert "hostNetwork" in refused(pods, namespace, raw([{"podNetworkName": net}]), hostNetwork=True)


def test_host_network_pod_without_networks_is_unchanged(pods: PodMaker, binding: Binding, namespace: str) -> None:
    """KEP "Auto-population" applies only when hostNetwork is not set; such a pod is not held either."""
    created = pods.create(namespace, unique("p"), None, dry_run=True, hostNetwork=True)
    annotations = created.metadata.annotations or {}
    assert binding.networks_annotation not in annotations, annotations
    if binding.status_annotation:
        assert binding.status_annotation not in annotations, annotations
    assert not created.spec.scheduling_gates, created.spec.scheduling_gates
    assert created.spec.host_network is True


def test_malformed_list(pods: PodMaker, binding: Binding, namespace: str) -> None:
    message = refused(pods, namespace, "[{not json")
    assert str(binding.networks_annotation) in message


def test_valid_list_is_admitted(pods: PodMaker, binding: Binding, namespace: str, net: str, other: str) -> None:
    created = pods.create(namespace, unique("p"), raw([
        {"podNetworkName": "default"}, {"podNetworkName": net, "interfaceName": "fronthaul", "isDefaultGW4": True},
        {"podNetworkName": other}]), dry_run=True)
    assert created.metadata.annotations[binding.networks_annotation]


def test_pod_without_networks_gets_the_default_network(pods: PodMaker, binding: Binding, namespace: str) -> None:
    """KEP "Auto-population": networks: [{podNetworkName: default}]."""
    created = pods.create(namespace, unique("p"), None, dry_run=True)
    listed = json.loads((created.metadata.annotations or {}).get(str(binding.networks_annotation), "[]"))
    assert [n.get("podNetworkName") for n in listed] == ["default"]
