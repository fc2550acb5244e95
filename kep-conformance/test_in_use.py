"""PodNetworkInUse: deletion waits for the last user."""

from __future__ import annotations

import pytest
from kubernetes import client

from conftest import Networks, absent, unique, wait_for
from features import GROUP, VERSION
from pods import pod

pytestmark = pytest.mark.feature("PodNetworkInUse")


def test_network_in_use_by_a_pod_is_deleted_after_the_pod(
    networks: Networks, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str,
) -> None:
    name = networks.create()["metadata"]["name"]
    networks.ready(name)
    user = unique("kep-user")
    core.create_namespaced_pod(namespace, pod(user, [{"podNetworkName": name, "interfaceName": "net1"}]))
    wait_for(lambda: networks.get(name)["metadata"].get("finalizers"), networks.timeout, "the in-use finalizer")
    custom.delete_cluster_custom_object(GROUP, VERSION, "podnetworks", name)
    held = networks.get(name)
    assert held["metadata"].get("deletionTimestamp"), "deletion should be pending while a pod uses it"
    assert held["metadata"].get("finalizers"), "a finalizer should hold the network while in use"
    core.delete_namespaced_pod(user, namespace, grace_period_seconds=0)
    wait_for(lambda: absent(lambda: networks.get(name)), networks.timeout, f"PodNetwork {name} to go")


def test_network_deleted_right_after_a_pod_references_it_is_held(
    networks: Networks, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str,
) -> None:
    """InUse holds from the moment the pod exists, not once a controller has caught up."""
    name = networks.create()["metadata"]["name"]
    networks.ready(name)
    user = unique("kep-user")
    core.create_namespaced_pod(namespace, pod(user, [{"podNetworkName": name}]))
    custom.delete_cluster_custom_object(GROUP, VERSION, "podnetworks", name)
    held = networks.get(name)
    assert held["metadata"].get("deletionTimestamp"), "deletion should be pending while a pod uses it"
    core.delete_namespaced_pod(user, namespace, grace_period_seconds=0)
    wait_for(lambda: absent(lambda: networks.get(name)), networks.timeout, f"PodNetwork {name} to go")


def test_attachment_in_use_by_a_pod_is_deleted_after_the_pod(
    networks: Networks, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str,
) -> None:
    net = networks.create()["metadata"]["name"]
    networks.ready(net)
    pna = unique("kep-pna")
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "podnetworkattachments", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "PodNetworkAttachment",
        "metadata": {"name": pna}, "spec": {"podNetworkName": net},
    })
    user = unique("kep-user")
    core.create_namespaced_pod(namespace, pod(user, [{"podNetworkAttachmentName": pna}]))

    def read() -> object:
        return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "podnetworkattachments", pna)

    wait_for(lambda: read()["metadata"].get("finalizers"), networks.timeout, "the in-use finalizer")  # type: ignore[index]
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "podnetworkattachments", pna)
    assert read()["metadata"].get("deletionTimestamp")  # type: ignore[index]
    core.delete_namespaced_pod(user, namespace, grace_period_seconds=0)
    wait_for(lambda: absent(read), networks.timeout, f"PodNetworkAttachment {pna} to go")
