"""The API objects on the real apiserver: schema and CEL rules, conditions, finalizers, default."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from tests.controller.controller_support import make_attachment, Networks, condition, conditions, status_of
from tests.controller.controller_support import suffix
from tests.support.wait import wait_for
from kubernetes.client.exceptions import ApiException

from tests.controller.controller_support import Kube
from podnetwork import names

pytestmark = pytest.mark.cluster


def refused(fn: Any) -> str:
    with pytest.raises(ApiException) as exc:
        fn()
    assert exc.value.status in (400, 422), exc.value.body
    return str(exc.value.body)


@pytest.mark.parametrize("spec,needle", [
    ({"topology": "L2", "ipv4": {"subnet": "10.1.0.0/33"}}, "must be a CIDR"),
    ({"topology": "L2", "ipv4": {"subnet": "10.1.0.5/24"}}, "canonical form"),
    ({"topology": "L2", "ipv4": {"subnet": "fd00::/64"}}, "subnet must be an IPv4 CIDR"),
    ({"topology": "L2", "ipv4": {"subnet": "10.1.0.0/24", "excludes": ["10.2.0.0/28"]}},
     "every excludes range must lie inside the subnet"),
    ({"topology": "L2", "ipv4": {"subnet": "10.1.0.0/24", "gateway": "10.9.9.9"}}, "gateway must be an IP"),
    ({"topology": "L2", "ipv4": {"subnet": "10.1.0.0/24"}, "mtu": 100}, "spec.mtu"),
    ({"topology": "L2", "ipv4": {"subnet": "10.1.0.0/24"}, "networkId": 0}, "spec.networkId"),
    ({"topology": "L3"}, "L3 routes addresses; a network without ipv4 or ipv6 is L2"),
    ({"topology": "L2", "serviceCIDRs": ["10.96.0.0/24"]}, "a network without ipv4 or ipv6 has no Services"),
    ({"topology": "L2", "ipv4": {"subnet": "10.1.0.0/24"}, "interfaceKind": "macvlan"}, "uplink is required"),
])
def test_bad_params_refused(networks: Networks, spec: dict[str, Any], needle: str) -> None:
    assert needle in refused(lambda: networks.params(spec))


def invalid_fields(fn: Any) -> list[str]:
    """The request is refused as 422 Invalid; the field paths of its causes."""
    with pytest.raises(ApiException) as exc:
        fn()
    assert exc.value.status == 422, exc.value.body
    body = status_of(exc.value)
    assert body["reason"] == "Invalid", body
    return [c.get("field", "") for c in body["details"]["causes"]]


def test_pod_network_immutable_except_enabled(networks: Networks, kube: Kube) -> None:
    name = networks.network()
    kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, name, {"spec": {"enabled": False}})
    body = refused(lambda: kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, name,
                                              {"spec": {"provider": "other.io/x"}}))
    assert "spec.provider is immutable" in body
    body = refused(lambda: kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, name, {"spec": {
        "parametersRefs": [{"group": "g", "kind": "k", "name": "n"}]}}))
    assert "spec.parametersRefs is immutable" in body


def test_immutable_field_errors_name_the_field(networks: Networks, kube: Kube) -> None:
    """API conventions: a refused mutation is 422 Invalid with the field's path."""
    name = networks.network(refs=[{"group": "g", "kind": "k", "name": "n"}])
    assert invalid_fields(lambda: kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, name, {
        "spec": {"provider": "other.io/x"}})) == ["spec.provider"]
    assert invalid_fields(lambda: kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, name, {
        "spec": {"parametersRefs": None}})) == ["spec.parametersRefs"]


def test_pod_network_without_spec_gets_defaults(networks: Networks, kube: Kube) -> None:
    """Every PodNetworkSpec field is optional: no spec at all is a valid, enabled network."""
    name = f"mna-net-{suffix()}"
    kube.create_cluster(names.GROUP, names.POD_NETWORK_PLURAL, {
        "apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.POD_NETWORK_KIND,
        "metadata": {"name": name}})
    networks.made.append((names.GROUP, names.POD_NETWORK_PLURAL, name))
    obj = kube.get_cluster(names.GROUP, names.POD_NETWORK_PLURAL, name)
    assert obj is not None and obj["spec"] == {"enabled": True}
    wait_for("Ready", lambda: condition(kube, name, "Ready") == "True")


def test_provider_length_and_enabled_default(networks: Networks, kube: Kube) -> None:
    assert "spec.provider" in refused(lambda: kube.create_cluster(names.GROUP, names.POD_NETWORK_PLURAL, {
        "apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.POD_NETWORK_KIND,
        "metadata": {"name": f"mna-{suffix()}"}, "spec": {"provider": "x" * 254}}))
    name = f"mna-net-{suffix()}"
    kube.create_cluster(names.GROUP, names.POD_NETWORK_PLURAL, {
        "apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.POD_NETWORK_KIND,
        "metadata": {"name": name}, "spec": {}})
    networks.made.append((names.GROUP, names.POD_NETWORK_PLURAL, name))
    obj = kube.get_cluster(names.GROUP, names.POD_NETWORK_PLURAL, name)
    assert obj is not None and obj["spec"]["enabled"] is True


def test_attachment_immutable(networks: Networks, kube: Kube, namespace: str) -> None:
    net = networks.network()
    make_attachment(kube, namespace, "att", net)
    body = refused(lambda: kube.patch_namespaced(names.GROUP, names.POD_NETWORK_ATTACHMENT_PLURAL, namespace,
                                                 "att", {"spec": {"podNetworkName": "other"}}))
    assert "spec is immutable" in body


def test_pod_network_condition_transitions(networks: Networks, kube: Kube) -> None:
    # No parametersRefs: Ready, and no ParamsReady condition at all.
    plain = networks.network()
    wait_for("Ready=True", lambda: condition(kube, plain, "Ready") == "True")
    assert "ParamsReady" not in conditions(kube, plain)

    # parametersRefs to a NetworkParams that does not exist yet.
    params_name = f"mna-params-{suffix()}"
    net = networks.network(params_name)
    wait_for("ParamsNotReady", lambda: conditions(kube, net).get("Ready", {}).get("reason") == "ParamsNotReady")
    assert conditions(kube, net)["ParamsReady"]["status"] == "False"
    assert conditions(kube, net)["ParamsReady"]["reason"] == "NotFound"

    # The parameters appear: both conditions turn True.
    networks.params({"topology": "L3", "ipv4": {"subnet": "10.60.0.0/24"}}, name=params_name)
    wait_for("Ready=True", lambda: condition(kube, net, "Ready") == "True")
    ready = conditions(kube, net)["Ready"]
    assert conditions(kube, net)["ParamsReady"]["status"] == "True"
    obj = kube.get_cluster(names.GROUP, names.POD_NETWORK_PLURAL, net)
    assert obj is not None and ready["observedGeneration"] == obj["metadata"]["generation"]

    # Disabled: AdministrativelyDisabled; ParamsReady keeps its transition time.
    params_time = conditions(kube, net)["ParamsReady"]["lastTransitionTime"]
    kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, net, {"spec": {"enabled": False}})
    wait_for("AdministrativelyDisabled",
             lambda: conditions(kube, net)["Ready"]["reason"] == "AdministrativelyDisabled")
    after = conditions(kube, net)
    assert after["Ready"]["status"] == "False"
    assert after["ParamsReady"]["lastTransitionTime"] == params_time
    assert after["Ready"]["observedGeneration"] == ready["observedGeneration"] + 1

    # Re-enabled, then the parameters go bad: ParamsNotReady again.
    kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, net, {"spec": {"enabled": True}})
    wait_for("Ready=True again", lambda: condition(kube, net, "Ready") == "True")
    kube.custom.delete_cluster_custom_object(names.PARAMS_GROUP, names.VERSION, names.PARAMS_PLURAL, params_name)
    wait_for("ParamsNotReady after params deleted",
             lambda: conditions(kube, net)["Ready"]["reason"] == "ParamsNotReady")


def test_unsupported_parameters_kind(networks: Networks, kube: Kube) -> None:
    net = networks.network(refs=[{"group": "k8s.cni.cncf.io", "kind": "NetworkAttachmentDefinition", "name": "x"}])
    wait_for("ParamsReady=False", lambda: condition(kube, net, "ParamsReady") == "False")
    assert conditions(kube, net)["ParamsReady"]["reason"] == "UnsupportedParameters"


def test_attachment_conditions_follow_network(networks: Networks, kube: Kube, namespace: str) -> None:
    net_name = f"mna-net-{suffix()}"
    make_attachment(kube, namespace, "att", net_name)

    def att() -> dict[str, Any]:
        return conditions(kube, "att", names.POD_NETWORK_ATTACHMENT_PLURAL, namespace).get("Ready", {})

    wait_for("PodNetworkNotReady (missing)", lambda: att().get("reason") == "PodNetworkNotReady")
    assert "does not exist" in att()["message"]
    networks.network(name=net_name)
    wait_for("attachment Ready", lambda: att().get("status") == "True")
    kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, net_name, {"spec": {"enabled": False}})
    wait_for("PodNetworkNotReady (disabled)", lambda: att().get("reason") == "PodNetworkNotReady")
    assert "is not Ready" in att()["message"]


def test_network_id_allocated_unique_and_spec_respected(networks: Networks, kube: Kube) -> None:
    def status(name: str) -> dict[str, Any]:
        obj = kube.get_cluster(names.PARAMS_GROUP, names.PARAMS_PLURAL, name)
        return (obj or {}).get("status") or {}

    def network_id(name: str) -> Any:
        return status(name).get("networkId")

    a = networks.params({"topology": "L2", "ipv4": {"subnet": "10.61.0.0/24"}})
    b = networks.params({"topology": "L2", "ipv4": {"subnet": "10.61.0.0/24"}})
    pinned_id = 100 + int(suffix(), 16) % 3000
    c = networks.params({"topology": "L2", "ipv4": {"subnet": "10.62.0.0/24"}, "networkId": pinned_id})
    ids = [wait_for(f"networkId of {n}", functools.partial(network_id, n)) for n in (a, b, c)]
    assert len(set(ids)) == 3 and ids[2] == pinned_id
    clash = networks.params({"topology": "L2", "ipv4": {"subnet": "10.63.0.0/24"}, "networkId": pinned_id})
    wait_for("NetworkIdConflict", lambda: any(c_.get("reason") == "NetworkIdConflict"
                                              for c_ in status(clash).get("conditions") or []))
    assert "networkId" not in status(clash)


def test_finalizer_blocks_deletion_while_in_use(networks: Networks, kube: Kube, make_pod: Any,
                                                namespace: str) -> None:
    net = networks.ready_network("10.64.0.0/24")
    make_pod("user", [{"podNetworkName": net}])
    wait_for("finalizer", lambda: names.FINALIZER in (kube.get_cluster(
        names.GROUP, names.POD_NETWORK_PLURAL, net) or {}).get("metadata", {}).get("finalizers", []))
    kube.custom.delete_cluster_custom_object(names.GROUP, names.VERSION, names.POD_NETWORK_PLURAL, net)
    obj = kube.get_cluster(names.GROUP, names.POD_NETWORK_PLURAL, net)
    assert obj is not None and obj["metadata"].get("deletionTimestamp")
    kube.core.delete_namespaced_pod("user", namespace, grace_period_seconds=0)
    wait_for("PodNetwork gone", lambda: kube.get_cluster(names.GROUP, names.POD_NETWORK_PLURAL, net) is None)


def test_deletion_right_after_a_pod_is_created_is_held(networks: Networks, kube: Kube, make_pod: Any,
                                                        namespace: str) -> None:
    """The in-use finalizer is in place when the pod's creation returns, not a watch event later."""
    for i in range(3):
        net = networks.ready_network(f"10.65.{i}.0/24")
        make_pod(f"user{i}", [{"podNetworkName": net}])
        kube.custom.delete_cluster_custom_object(names.GROUP, names.VERSION, names.POD_NETWORK_PLURAL, net)
        obj = kube.get_cluster(names.GROUP, names.POD_NETWORK_PLURAL, net)
        assert obj is not None and obj["metadata"].get("deletionTimestamp"), "deleted while a pod used it"
        kube.core.delete_namespaced_pod(f"user{i}", namespace, grace_period_seconds=0)
        wait_for("PodNetwork gone with its last user", lambda: kube.get_cluster(
            names.GROUP, names.POD_NETWORK_PLURAL, net) is None)


def test_attachment_keeps_network_in_use(networks: Networks, kube: Kube, namespace: str) -> None:
    net = networks.network()
    make_attachment(kube, namespace, "att", net)
    wait_for("finalizer", lambda: names.FINALIZER in (kube.get_cluster(
        names.GROUP, names.POD_NETWORK_PLURAL, net) or {}).get("metadata", {}).get("finalizers", []))
    kube.custom.delete_cluster_custom_object(names.GROUP, names.VERSION, names.POD_NETWORK_PLURAL, net)
    kube.custom.delete_namespaced_custom_object(names.GROUP, names.VERSION, namespace,
                                                names.POD_NETWORK_ATTACHMENT_PLURAL, "att")
    wait_for("PodNetwork gone", lambda: kube.get_cluster(names.GROUP, names.POD_NETWORK_PLURAL, net) is None)


def test_terminal_pods_do_not_hold_network(networks: Networks, kube: Kube, make_pod: Any,
                                           namespace: str) -> None:
    net = networks.ready_network("10.65.0.0/24")
    make_pod("done", [{"podNetworkName": net}])
    wait_for("finalizer", lambda: names.FINALIZER in (kube.get_cluster(
        names.GROUP, names.POD_NETWORK_PLURAL, net) or {}).get("metadata", {}).get("finalizers", []))
    kube.core.patch_namespaced_pod_status("done", namespace, {"status": {"phase": "Succeeded"}})
    kube.custom.delete_cluster_custom_object(names.GROUP, names.VERSION, names.POD_NETWORK_PLURAL, net)
    wait_for("PodNetwork gone", lambda: kube.get_cluster(names.GROUP, names.POD_NETWORK_PLURAL, net) is None)


def test_default_network_recreated(kube: Kube, controller: Any) -> None:
    before = wait_for("default PodNetwork", lambda: kube.get_cluster(
        names.GROUP, names.POD_NETWORK_PLURAL, names.DEFAULT_NETWORK))
    # Drop the finalizer first if pods hold it, so the deletion really completes.
    kube.custom.delete_cluster_custom_object(names.GROUP, names.VERSION, names.POD_NETWORK_PLURAL,
                                             names.DEFAULT_NETWORK)
    if before["metadata"].get("finalizers"):
        kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, names.DEFAULT_NETWORK,
                           {"metadata": {"finalizers": None}})

    def recreated() -> bool:
        obj = kube.get_cluster(names.GROUP, names.POD_NETWORK_PLURAL, names.DEFAULT_NETWORK)
        return obj is not None and obj["metadata"]["uid"] != before["metadata"]["uid"]

    wait_for("default recreated", recreated)
    wait_for("default Ready", lambda: condition(kube, names.DEFAULT_NETWORK, "Ready") == "True")


def test_default_network_in_use_is_recreated_not_held(kube: Kube, make_pod: Any) -> None:
    """KEP "Availability": deleting `default` while pods use it ends in a fresh `default`,
    never in one held with a deletionTimestamp until every pod is gone."""
    make_pod("user", None)
    wait_for("finalizer on default", lambda: names.FINALIZER in (kube.get_cluster(
        names.GROUP, names.POD_NETWORK_PLURAL, names.DEFAULT_NETWORK) or {}).get("metadata", {}).get(
        "finalizers", []))
    before = kube.get_cluster(names.GROUP, names.POD_NETWORK_PLURAL, names.DEFAULT_NETWORK)
    assert before is not None
    kube.custom.delete_cluster_custom_object(names.GROUP, names.VERSION, names.POD_NETWORK_PLURAL,
                                             names.DEFAULT_NETWORK)

    def recreated() -> bool:
        obj = kube.get_cluster(names.GROUP, names.POD_NETWORK_PLURAL, names.DEFAULT_NETWORK)
        return (obj is not None and obj["metadata"]["uid"] != before["metadata"]["uid"]
                and not obj["metadata"].get("deletionTimestamp"))

    wait_for("default recreated while its pod still runs", recreated)
    wait_for("default Ready", lambda: condition(kube, names.DEFAULT_NETWORK, "Ready") == "True")


def test_conditions_validated_as_metav1_condition(networks: Networks, kube: Kube) -> None:
    """status.conditions holds metav1.Conditions: their type and reason patterns apply."""
    name = networks.network()
    good = {"type": "Ready", "status": "False", "reason": "Some_Reason", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}
    for bad in ({**good, "reason": "not a reason"}, {**good, "type": "not a type"}):
        fields = invalid_fields(lambda: kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, name, {
            "status": {"conditions": [bad]}}, status=True))
        assert any(f.startswith("status.conditions[0].") for f in fields), fields
