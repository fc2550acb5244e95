"""PodNetworkStatus: KEP-3698 "Status Conditions" of PodNetwork, kept current.

Ready and ParamsReady with the KEP's reasons, and re-evaluated when the spec
or the referenced parameters change, with observedGeneration following the
spec's generation (metav1.Condition).
"""

from __future__ import annotations

from typing import Any

import pytest

from suite.binding import Binding
from suite.kube import condition, unique, wait_for
from suite.networks import Networks

pytestmark = pytest.mark.feature("PodNetworkStatus")


def _ready_at(obj: dict[str, Any]) -> dict[str, Any]:
    ready = condition(obj, "Ready")
    assert ready is not None, obj.get("status")
    return ready


def test_network_with_valid_parameters_is_ready(networks: Networks) -> None:
    name = networks.create()["metadata"]["name"]
    ready = networks.ready(name)
    if ready["spec"].get("parametersRefs"):
        params = condition(ready, "ParamsReady")
        assert params and params["status"] == "True", ready.get("status")
    c = _ready_at(ready)
    assert c.get("lastTransitionTime")
    assert c.get("observedGeneration") == ready["metadata"]["generation"], c


def test_missing_parameters_make_it_not_ready(networks: Networks, binding: Binding) -> None:
    """KEP: Ready is False with ParamsNotReady while ParamsReady is not True."""
    if binding.parameters_mode == "inline":
        pytest.skip("the binding passes parameters inline: there is no parametersRefs object to be missing")
    refs = [{"group": "kep-conformance.example", "kind": "Missing", "name": unique("nothing")}]
    name = networks.create(refs=refs)["metadata"]["name"]
    networks.wait_condition(name, "ParamsReady", "False")
    networks.wait_condition(name, "Ready", "False", "ParamsNotReady")


def test_disabled_network_is_not_ready_until_enabled(networks: Networks) -> None:
    name = networks.create(enabled=False)["metadata"]["name"]
    networks.wait_condition(name, "Ready", "False", "AdministrativelyDisabled")
    networks.patch(name, {"enabled": True})
    networks.wait_condition(name, "Ready", "True")


def test_ready_follows_each_spec_change_with_its_generation(networks: Networks) -> None:
    """Each spec change bumps metadata.generation; Ready must be re-evaluated for that generation."""
    name = networks.create()["metadata"]["name"]
    first = networks.ready(name)
    generation = first["metadata"]["generation"]
    networks.patch(name, {"enabled": False})
    disabled = networks.wait_condition(name, "Ready", "False", "AdministrativelyDisabled")
    assert disabled["metadata"]["generation"] > generation
    assert _ready_at(disabled).get("observedGeneration") == disabled["metadata"]["generation"], \
        _ready_at(disabled)
    networks.patch(name, {"enabled": True})

    def current() -> dict[str, Any] | None:
        obj = networks.get(name)
        c = condition(obj, "Ready")
        good = c and c["status"] == "True" and c.get("observedGeneration") == obj["metadata"]["generation"]
        return obj if good else None

    wait_for(current, networks.timeout, f"{name}: Ready=True for the latest generation")


def test_ready_follows_a_change_of_the_parameters(networks: Networks) -> None:
    """KEP: Ready switches back to False when ParamsReady becomes False, and recovers with it.

    The change is one the apiserver admits (the options file's parameters.notReady: the
    referenced object deleted, or its spec replaced): a validating API refuses static
    mistakes before the implementation sees them, so only the implementation's own
    re-evaluation can turn Ready False here."""
    if networks.binding.parameters_mode != "refs":
        pytest.skip("only referenced parameters can change under a PodNetwork (the object is immutable)")
    name = networks.create()["metadata"]["name"]
    networks.ready(name)
    what = networks.unready_params(name)
    networks.wait_condition(name, "ParamsReady", "False")
    gone = networks.wait_condition(name, "Ready", "False", "ParamsNotReady")
    assert _ready_at(gone).get("observedGeneration") == gone["metadata"]["generation"], (what, _ready_at(gone))
    networks.restore_params(name)
    networks.wait_condition(name, "Ready", "True")
    obj = networks.get(name)
    assert _ready_at(obj).get("observedGeneration") == obj["metadata"]["generation"]
