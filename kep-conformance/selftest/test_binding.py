"""The options files: both shipped ones load, and a bad one is refused field by field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from suite.binding import BindingError, impossible_features, load, parse
from suite.profiles import FEATURES

IMPLEMENTATIONS = Path(__file__).resolve().parents[1] / "implementations"


def test_multinet_options() -> None:
    b = load(IMPLEMENTATIONS / "multinet.yaml")
    assert (b.group, b.version, b.attachments, b.parameters_mode) == (
        "multinetwork.networking.x-k8s.io", "v1alpha1", True, "refs")
    assert b.networks_annotation and b.status_annotation and b.policy_annotation and b.service_annotation
    first, second = b.templates["distinct"][:2]
    assert not first.subnets[0].overlaps(second.subnets[0])
    a, c = b.templates["overlapping"]
    assert a.subnets == c.subnets
    assert {s.version for s in b.templates["dualStack"][0].subnets} == {4, 6}
    assert impossible_features(b) == {}
    assert set(b.supported_features) <= set(FEATURES)
    assert b.params_not_ready == "delete" and "notReady" not in b.templates


def test_not_ready_is_a_deletion_unless_a_template_replaces_the_spec() -> None:
    data = good()
    del data["parameters"]["notReady"]
    assert parse(data).params_not_ready == "delete"  # what every API admits for a referenced object
    replacement = {"plural": "networkparams", "object": {"apiVersion": "example.io/v1", "kind": "Params",
                                                         "spec": {"vlan": 4095}}}
    data["parameters"]["notReady"] = [replacement]
    b = parse(data)
    found = b.template("notReady")
    assert b.params_not_ready == "replace" and found is not None and found.object == replacement["object"]


def test_kubernetes_sigs_multi_network_options() -> None:
    b = load(IMPLEMENTATIONS / "kubernetes-sigs-multi-network.yaml")
    assert b.group == "multinetwork.networking.k8s.io" and not b.attachments and b.parameters_mode == "inline"
    assert b.networks_annotation is None and b.resource_claim is not None and b.status_annotation is None
    out = impossible_features(b)
    for feature in ("PodNetworkAttachment", "PodNetworksStaticValidation", "NetworkPolicyIngress",
                    "ServiceEndpointSlices", "NetworkSelfDiscovery"):
        assert feature in out, feature
    second = b.template("distinct", 1)
    assert second is not None and second.inline == {"name": "dummy1"}


def good() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((IMPLEMENTATIONS / "multinet.yaml").read_text())
    return data


@pytest.mark.parametrize("path,value,error", [
    ("implementation.url", None, "implementation.url: required"),
    ("implementation.contact", "me", "implementation.contact: must be a list"),
    ("api.group", None, "api.group: required"),
    ("api.parameters", "sideways", "api.parameters: one of refs, inline, none"),
    ("pods.networks", {}, "pods.networks: exactly one of annotation or resourceClaim"),
    ("parameters.distinct", [], "parameters.distinct: at least two"),
    ("policy.unbound", "some", "policy.unbound: one of default, all, none"),
    ("parameters.notReady", "corrupt", "parameters.notReady: 'delete' or a template"),
    ("parameters.invalid", [{"plural": "networkparams"}], "parameters.invalid: renamed parameters.notReady"),
])
def test_bad_field_is_named(path: str, value: Any, error: str) -> None:
    data = good()
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    with pytest.raises(BindingError) as refused:
        parse(data, "opts.yaml")
    assert any(e.startswith(error) for e in refused.value.errors), refused.value.errors


def test_every_problem_is_reported_at_once() -> None:
    data = good()
    del data["implementation"]["url"]
    data["api"]["parameters"] = "sideways"
    with pytest.raises(BindingError) as refused:
        parse(data)
    assert len(refused.value.errors) >= 2


def test_refs_template_needs_an_object_and_plural() -> None:
    data = good()
    del data["parameters"]["distinct"][0]["plural"]
    data["parameters"]["distinct"][1]["object"] = {"kind": "X"}
    with pytest.raises(BindingError) as refused:
        parse(data)
    joined = "; ".join(refused.value.errors)
    assert "parameters.distinct[0].plural" in joined and "parameters.distinct[1].object" in joined
