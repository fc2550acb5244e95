"""PodNetworkAPI: the PodNetwork object as KEP-3698 "PodNetwork" defines it."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from suite.binding import Binding
from suite.kube import Clients, Obj, refusal, unique
from suite.networks import NETWORKS, Networks

pytestmark = pytest.mark.feature("PodNetworkAPI")


def test_podnetwork_is_served_cluster_scoped_with_status(clients: Clients, binding: Binding) -> None:
    definition: Obj = clients.extensions.read_custom_resource_definition(f"{NETWORKS}.{binding.group}")
    assert definition.spec.names.kind == "PodNetwork"
    assert definition.spec.scope == "Cluster"
    served = {v.name: v for v in definition.spec.versions if v.served}
    assert binding.version in served, f"{NETWORKS}: {binding.version} is not served"
    assert served[binding.version].subresources and served[binding.version].subresources.status is not None, \
        "PodNetwork has no status subresource (KEP: +kubebuilder:subresource:status)"


def test_enabled_defaults_to_true(networks: Networks) -> None:
    created = networks.create()
    assert created["spec"].get("enabled") is True


def test_enabled_is_mutable(networks: Networks) -> None:
    name = networks.create()["metadata"]["name"]
    assert networks.patch(name, {"enabled": False})["spec"]["enabled"] is False
    assert networks.patch(name, {"enabled": True})["spec"]["enabled"] is True


def _parameters_change(binding: Binding) -> tuple[str, dict[str, Any]]:
    if binding.parameters_mode == "inline":
        return "spec.parameters", {"parameters": {"kep-conformance": "changed"}}
    return "spec.parametersRefs", {"parametersRefs": [{"group": "other.example", "kind": "Other", "name": "x"}]}


@pytest.mark.parametrize("field", ["provider", "parameters"])
def test_immutable_field_is_refused_as_invalid_naming_the_field(
    networks: Networks, binding: Binding, field: str,
) -> None:
    """KEP "Mutability": immutable except Enabled. API conventions: 422 Invalid, the field as the cause."""
    path, change = ("spec.provider", {"provider": "other.example"}) if field == "provider" \
        else _parameters_change(binding)
    name = networks.create()["metadata"]["name"]
    with pytest.raises(ApiException) as refused:
        networks.patch(name, change)
    assert refused.value.status == 422, refused.value.body
    body = refusal(refused.value)
    assert body.get("reason") == "Invalid", body
    fields = [c.get("field") for c in (body.get("details") or {}).get("causes") or []]
    assert path in fields, f"expected a cause on {path}, got {fields}"


def test_provider_longer_than_253_is_refused(networks: Networks, clients: Clients, binding: Binding) -> None:
    """KEP "Provider": MaxLength=253."""
    body = {"apiVersion": f"{binding.group}/{binding.version}", "kind": "PodNetwork",
            "metadata": {"name": unique("kep-long")}, "spec": {"provider": "p" * 254}}
    with pytest.raises(ApiException) as refused:
        clients.custom.create_cluster_custom_object(binding.group, binding.version, NETWORKS, body)
    assert refused.value.status == 422
    assert "provider" in refusal(refused.value).get("message", "")
