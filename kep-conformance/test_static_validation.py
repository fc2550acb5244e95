"""PodNetworksStaticValidation: the KEP's static validations, at admission.

Pods are sent with server-side dry run, so nothing is created.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import Networks, unique
from features import NETWORKS_ANNOTATION
from pods import pod

pytestmark = pytest.mark.feature("PodNetworksStaticValidation")


def refused(core: client.CoreV1Api, namespace: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(namespace, body, dry_run="All")
    assert err.value.status in (400, 403, 422), err.value.body
    message: str = json.loads(err.value.body).get("message", "")
    return message


@pytest.fixture
def net(networks: Networks) -> str:
    name: str = networks.create()["metadata"]["name"]
    return name


@pytest.fixture
def other(networks: Networks) -> str:
    name: str = networks.create(index=1)["metadata"]["name"]
    return name


def test_both_names_in_one_entry(core: client.CoreV1Api, namespace: str, net: str) -> None:
    message = refused(core, namespace, pod(unique("p"), [{"podNetworkName": net, "podNetworkAttachmentName": "x"}]))
    assert "podNetworkAttachmentName" in message or "podNetworkName" in message


def test_neither_name_in_an_entry(core: client.CoreV1Api, namespace: str) -> None:
    message = refused(core, namespace, pod(unique("p"), [{"interfaceName": "net1"}]))
    assert "podNetworkName" in message


def test_same_network_twice(core: client.CoreV1Api, namespace: str, net: str) -> None:
    message = refused(core, namespace, pod(unique("p"), [
        {"podNetworkName": net, "interfaceName": "net1"}, {"podNetworkName": net, "interfaceName": "net2"}]))
    assert net in message


def test_duplicate_interface_names(core: client.CoreV1Api, namespace: str, net: str, other: str) -> None:
    message = refused(core, namespace, pod(unique("p"), [
        {"podNetworkName": net, "interfaceName": "net1"}, {"podNetworkName": other, "interfaceName": "net1"}]))
    assert "interfaceName" in message


@pytest.mark.parametrize("ifname", ["x" * 16, "a/b", "a b", ".", ".."])
def test_invalid_interface_name(core: client.CoreV1Api, namespace: str, net: str, ifname: str) -> None:
    message = refused(core, namespace, pod(unique("p"), [{"podNetworkName": net, "interfaceName": ifname}]))
    assert "interfaceName" in message


@pytest.mark.parametrize("flag", ["isDefaultGW4", "isDefaultGW6"])
def test_two_default_gateways(core: client.CoreV1Api, namespace: str, net: str, other: str, flag: str) -> None:
    message = refused(core, namespace, pod(unique("p"), [
        {"podNetworkName": net, flag: True}, {"podNetworkName": other, flag: True}]))
    assert flag in message


@pytest.mark.parametrize("ifname", ["net0", "eth1"])
def test_default_network_interface_other_than_eth0(core: client.CoreV1Api, namespace: str, ifname: str) -> None:
    message = refused(core, namespace, pod(unique("p"), [{"podNetworkName": "default", "interfaceName": ifname}]))
    assert "interfaceName" in message


def test_default_network_interface_eth0_or_unset_is_admitted(core: client.CoreV1Api, namespace: str,
                                                             net: str) -> None:
    for networks in ([{"podNetworkName": "default", "interfaceName": "eth0"}, {"podNetworkName": net}],
                     [{"podNetworkName": "default"}, {"podNetworkName": net, "interfaceName": "net1"}]):
        created = core.create_namespaced_pod(namespace, pod(unique("p"), networks), dry_run="All")
        assert created.metadata.annotations[NETWORKS_ANNOTATION]


def test_host_network_pod_with_networks(core: client.CoreV1Api, namespace: str, net: str) -> None:
    message = refused(core, namespace, pod(unique("p"), [{"podNetworkName": net}], hostNetwork=True))
    assert "hostNetwork" in message


def test_malformed_annotation(core: client.CoreV1Api, namespace: str) -> None:
    message = refused(core, namespace, pod(unique("p"), "[{not json"))
    assert NETWORKS_ANNOTATION in message


def test_valid_list_is_admitted(core: client.CoreV1Api, namespace: str, net: str, other: str) -> None:
    created = core.create_namespaced_pod(namespace, pod(unique("p"), [
        {"podNetworkName": "default"}, {"podNetworkName": net, "interfaceName": "fronthaul", "isDefaultGW4": True},
        {"podNetworkName": other}]), dry_run="All")
    assert created.metadata.annotations[NETWORKS_ANNOTATION]


def test_pod_without_networks_gets_the_default_network(core: client.CoreV1Api, namespace: str) -> None:
    created = core.create_namespaced_pod(namespace, pod(unique("p"), None), dry_run="All")
    networks = json.loads((created.metadata.annotations or {}).get(NETWORKS_ANNOTATION, "[]"))
    assert [n.get("podNetworkName") for n in networks] == ["default"]
