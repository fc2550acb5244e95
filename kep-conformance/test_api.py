"""PodNetworkAPI: the objects exist as the KEP defines them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import Networks, unique
from features import GROUP, VERSION

pytestmark = pytest.mark.feature("PodNetworkAPI")


def crd(api: client.ApiClient, plural: str) -> Any:
    return client.ApiextensionsV1Api(api).read_custom_resource_definition(f"{plural}.{GROUP}")


@pytest.mark.parametrize("plural,kind,scope", [
    ("podnetworks", "PodNetwork", "Cluster"),
    ("podnetworkattachments", "PodNetworkAttachment", "Namespaced"),
])
def test_crd_is_installed_with_scope_version_and_status(api: client.ApiClient, plural: str, kind: str, scope: str) -> None:
    definition = crd(api, plural)
    assert definition.spec.names.kind == kind
    assert definition.spec.scope == scope
    served = {v.name: v for v in definition.spec.versions if v.served}
    assert VERSION in served, f"{plural}: {VERSION} is not served"
    assert served[VERSION].subresources and served[VERSION].subresources.status is not None, \
        f"{plural}: the status subresource is missing"


def test_enabled_defaults_to_true(networks: Networks) -> None:
    created = networks.create()
    assert created["spec"].get("enabled") is True


def test_provider_is_immutable_and_enabled_is_mutable(networks: Networks, custom: client.CustomObjectsApi) -> None:
    name = networks.create()["metadata"]["name"]
    with pytest.raises(ApiException) as refused:
        custom.patch_cluster_custom_object(GROUP, VERSION, "podnetworks", name, {"spec": {"provider": "other.example"}})
    assert refused.value.status == 422
    patched = custom.patch_cluster_custom_object(GROUP, VERSION, "podnetworks", name, {"spec": {"enabled": False}})
    assert patched["spec"]["enabled"] is False


@pytest.mark.parametrize("field,change", [
    ("spec.provider", {"provider": "other.example"}),
    ("spec.parametersRefs", {"parametersRefs": [{"group": "other.example", "kind": "Other", "name": "x"}]}),
])
def test_immutable_field_is_refused_as_invalid_naming_the_field(
    networks: Networks, custom: client.CustomObjectsApi, field: str, change: dict[str, Any],
) -> None:
    """API conventions: an immutable field's change is 422 Invalid, with the field's path as its cause."""
    name = networks.create()["metadata"]["name"]
    with pytest.raises(ApiException) as refused:
        custom.patch_cluster_custom_object(GROUP, VERSION, "podnetworks", name, {"spec": change})
    assert refused.value.status == 422
    body = json.loads(refused.value.body)
    assert body.get("reason") == "Invalid", body
    fields = [c.get("field") for c in (body.get("details") or {}).get("causes") or []]
    assert field in fields, f"expected a cause on {field}, got {fields}"


def test_provider_longer_than_253_is_refused(networks: Networks, custom: client.CustomObjectsApi) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PodNetwork", "metadata": {"name": unique("kep-long")},
            "spec": {"provider": "p" * 254}}
    with pytest.raises(ApiException) as refused:
        custom.create_cluster_custom_object(GROUP, VERSION, "podnetworks", body)
    assert refused.value.status == 422
    assert "provider" in refused.value.body


def test_attachment_spec_is_immutable(networks: Networks, custom: client.CustomObjectsApi, namespace: str) -> None:
    first = networks.create()["metadata"]["name"]
    second = networks.create(index=1)["metadata"]["name"]
    name = unique("kep-pna")
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "podnetworkattachments", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "PodNetworkAttachment",
        "metadata": {"name": name}, "spec": {"podNetworkName": first},
    })
    with pytest.raises(ApiException) as refused:
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "podnetworkattachments", name,
                                              {"spec": {"podNetworkName": second}})
    assert refused.value.status == 422
