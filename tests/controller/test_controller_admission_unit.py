"""Admission decisions, without the apiserver: mutation, validation, access control."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller import admission
from podnetwork import names


def pod(networks: list[dict[str, Any]] | None = None, host_network: bool = False, **annotations: str) -> dict[str, Any]:
    ann = dict(annotations)
    if networks is not None:
        ann[names.NETWORKS_ANNOTATION] = json.dumps(networks)
    return {"metadata": {"name": "p", "namespace": "ns", "annotations": ann},
            "spec": {"hostNetwork": host_network, "containers": []}}


def allow_all(*_: Any) -> tuple[bool, str]:
    return True, ""


def test_auto_populates_default() -> None:
    patch = admission.mutate(pod())
    assert json.loads(patch["metadata"]["annotations"][names.NETWORKS_ANNOTATION]) == [{"podNetworkName": "default"}]
    assert "spec" not in patch


def test_host_network_pod_left_alone() -> None:
    assert admission.mutate(pod(host_network=True)) == {}


def test_secondary_network_gets_both_gates() -> None:
    patch = admission.mutate(pod([{"podNetworkName": "default"}, {"podNetworkName": "blue"}]))
    assert patch["spec"]["schedulingGates"] == [{"name": names.SCHEDULING_GATE}]
    assert patch["spec"]["readinessGates"] == [{"conditionType": names.READINESS_CONDITION}]
    assert "metadata" not in patch


def test_default_only_gets_no_gate() -> None:
    assert admission.mutate(pod([{"podNetworkName": "default"}])) == {}


def test_invalid_annotation_denied_at_mutation() -> None:
    with pytest.raises(admission.Denied, match=r"\[1\]\.interfaceName"):
        admission.mutate(pod([{"podNetworkName": "a", "interfaceName": "x"},
                              {"podNetworkName": "b", "interfaceName": "x"}]))


def test_use_checked_for_each_non_default_network() -> None:
    asked: list[tuple[str, str, str | None]] = []

    def may_use(user: Any, resource: str, name: str, ns: str | None) -> tuple[bool, str]:
        asked.append((resource, name, ns))
        return name != "red", ""

    with pytest.raises(admission.Denied) as exc:
        admission.validate(pod([{"podNetworkName": "default"}, {"podNetworkName": "red"},
                                {"podNetworkAttachmentName": "fast"}]), None, {"username": "alice"}, may_use)
    # The denied user's request is asked again for the pod's service account.
    assert asked == [("podnetworks", "red", None), ("podnetworks", "red", None),
                     ("podnetworkattachments", "fast", "ns")]
    assert str(exc.value).startswith("user 'alice' may not use PodNetwork 'red' (needs verb 'use' on podnetworks.")
    assert "system:serviceaccount:ns:default" in str(exc.value)


def test_use_granted_to_the_pods_service_account_counts() -> None:
    """PodSecurityPolicy's rule: pods made by a workload controller carry the grant on their account."""
    def may_use(user: Any, resource: str, name: str, ns: str | None) -> tuple[bool, str]:
        return user["username"] == "system:serviceaccount:ns:runner", ""

    controller_user = {"username": "system:serviceaccount:kube-system:replicaset-controller"}
    body = pod([{"podNetworkName": "red"}])
    body["spec"]["serviceAccountName"] = "runner"
    admission.validate(body, None, controller_user, may_use)
    body["spec"]["serviceAccountName"] = "other"
    with pytest.raises(admission.Forbidden):
        admission.validate(body, None, controller_user, may_use)


def test_use_of_an_attachments_network_counts() -> None:
    """Through an attachment, `use` of its PodNetwork (the KEP's access-controlled object) will do."""
    def may_use(user: Any, resource: str, name: str, ns: str | None) -> tuple[bool, str]:
        return (resource, name) == ("podnetworks", "blue"), ""

    body = pod([{"podNetworkAttachmentName": "fast"}])
    admission.validate(body, None, {"username": "alice"}, may_use,
                       lambda ns, name: "blue" if (ns, name) == ("ns", "fast") else None)
    with pytest.raises(admission.Forbidden, match="or on podnetworks.* 'red'"):
        admission.validate(body, None, {"username": "alice"}, may_use, lambda ns, name: "red")
    with pytest.raises(admission.Forbidden):
        admission.validate(body, None, {"username": "alice"}, may_use)


def test_allocations_annotation_refused_at_creation() -> None:
    bad = pod([{"podNetworkName": "blue"}], host_network=False, **{names.ALLOCATIONS_ANNOTATION: "[]"})
    with pytest.raises(admission.Denied, match="written by the controller"):
        admission.validate(bad, None, {}, allow_all)


def test_networks_annotation_immutable() -> None:
    old = pod([{"podNetworkName": "blue"}])
    admission.validate(old, old, {}, allow_all)
    with pytest.raises(admission.Denied, match="immutable"):
        admission.validate(pod([{"podNetworkName": "red"}]), old, {}, allow_all)


def test_configurations_split_fail_closed_and_open() -> None:
    mutating, validating = admission.webhook_configurations("https://127.0.0.1:9443", "Q0E=")
    closed, open_ = mutating["webhooks"]
    assert closed["failurePolicy"] == "Fail" and open_["failurePolicy"] == "Ignore"
    assert closed["matchConditions"][0]["expression"] == admission.HAS_NETWORKS
    assert open_["matchConditions"][0]["expression"] == f"!({admission.HAS_NETWORKS})"
    assert closed["clientConfig"]["url"] == "https://127.0.0.1:9443/mutate-pods"
    create, update = validating["webhooks"]
    assert create["failurePolicy"] == update["failurePolicy"] == "Fail"
    assert update["rules"][0]["operations"] == ["UPDATE"]
    assert update["matchConditions"][0]["expression"] == admission.NETWORKS_CHANGED
