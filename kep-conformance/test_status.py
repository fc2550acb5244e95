"""PodNetworkStatus: conditions, reasons and the `default` PodNetwork."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import Networks, absent, condition, unique, wait_for
from features import GROUP, VERSION
from pods import pod

pytestmark = pytest.mark.feature("PodNetworkStatus")


def wait_condition(networks: Networks, name: str, kind: str, status: str, reason: str | None = None) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        c = condition(networks.get(name), kind)
        if c and c["status"] == status and (reason is None or c.get("reason") == reason):
            return c
        return None
    result: dict[str, Any] = wait_for(check, networks.timeout, f"{name}: {kind}={status} {reason or ''}")
    return result


def test_default_network_exists_and_is_ready(networks: Networks) -> None:
    ready = networks.ready("default")
    c = condition(ready, "Ready")
    assert c is not None and c.get("lastTransitionTime")


def test_default_network_is_recreated_after_deletion(networks: Networks, custom: client.CustomObjectsApi) -> None:
    before = networks.get("default")["metadata"]["uid"]
    custom.delete_cluster_custom_object(GROUP, VERSION, "podnetworks", "default")

    def recreated() -> bool:
        try:
            return bool(networks.get("default")["metadata"]["uid"] != before)
        except ApiException as err:
            if err.status == 404:  # gone, not yet recreated
                return False
            raise

    wait_for(recreated, networks.timeout, "the default PodNetwork to be recreated")
    networks.ready("default")


def test_default_network_in_use_is_recreated_after_deletion(
    networks: Networks, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str,
) -> None:
    """KEP "Availability": even while pods use it, deleting `default` ends in a fresh `default`."""
    core.create_namespaced_pod(namespace, pod(unique("kep-user"), None))
    before = networks.get("default")["metadata"]["uid"]
    custom.delete_cluster_custom_object(GROUP, VERSION, "podnetworks", "default")

    def recreated() -> bool:
        try:
            obj = networks.get("default")
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return bool(obj["metadata"]["uid"] != before and not obj["metadata"].get("deletionTimestamp"))

    wait_for(recreated, networks.timeout, "the default PodNetwork to be recreated while a pod uses it")
    networks.ready("default")


def test_network_with_valid_parameters_is_ready(networks: Networks) -> None:
    name = networks.create()["metadata"]["name"]
    ready = networks.ready(name)
    if ready["spec"].get("parametersRefs"):
        params = condition(ready, "ParamsReady")
        assert params and params["status"] == "True"
    c = condition(ready, "Ready")
    assert c and c.get("observedGeneration") == ready["metadata"]["generation"]


def test_missing_parameters_make_it_not_ready(networks: Networks) -> None:
    refs = [{"group": "kep-conformance.example", "kind": "Missing", "name": unique("nothing")}]
    name = networks.create(params=refs)["metadata"]["name"]
    wait_condition(networks, name, "ParamsReady", "False")
    wait_condition(networks, name, "Ready", "False", "ParamsNotReady")


def test_disabled_network_is_not_ready_until_enabled(networks: Networks, custom: client.CustomObjectsApi) -> None:
    name = networks.create(enabled=False)["metadata"]["name"]
    wait_condition(networks, name, "Ready", "False", "AdministrativelyDisabled")
    custom.patch_cluster_custom_object(GROUP, VERSION, "podnetworks", name, {"spec": {"enabled": True}})
    wait_condition(networks, name, "Ready", "True")


def test_attachment_follows_its_network(networks: Networks, custom: client.CustomObjectsApi, namespace: str) -> None:
    net = unique("kep-later")
    name = unique("kep-pna")
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "podnetworkattachments", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "PodNetworkAttachment",
        "metadata": {"name": name}, "spec": {"podNetworkName": net},
    })

    def attachment_ready(status: str, reason: str | None) -> Any:
        def check() -> bool:
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "podnetworkattachments", name)
            c = condition(obj, "Ready")
            return bool(c and c["status"] == status and (reason is None or c.get("reason") == reason))
        return wait_for(check, networks.timeout, f"attachment {name} Ready={status} {reason or ''}")

    attachment_ready("False", "PodNetworkNotReady")
    networks.create(net)
    attachment_ready("True", None)
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "podnetworkattachments", name)
    wait_for(lambda: absent(lambda: custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "podnetworkattachments", name)), networks.timeout, "attachment deleted")
