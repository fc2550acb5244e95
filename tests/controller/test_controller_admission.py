"""Admission on the real apiserver: static validations, auto-population, gates, `use` access."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.controller.controller_support import Networks, make_attachment, status_of
from tests.controller.controller_support import FakeNodes, pod_manifest
from tests.support.wait import wait_for
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.controller.controller_support import Kube
from podnetwork import names

pytestmark = pytest.mark.cluster
WHERE = f"annotation {names.NETWORKS_ANNOTATION}"


def rejection(make_pod: Any, networks: list[dict[str, Any]] | None, **kwargs: Any) -> str:
    with pytest.raises(ApiException) as exc:
        make_pod("bad", networks, **kwargs)
    return str(status_of(exc.value)["message"])


@pytest.mark.parametrize("nets,message", [
    ([{"podNetworkName": "a"}, {"podNetworkName": "a"}],
     f"{WHERE}[1].podNetworkName: 'a' is already referenced by entry 0"),
    ([{"podNetworkName": "a", "podNetworkAttachmentName": "b"}],
     f"{WHERE}[0]: exactly one of podNetworkName or podNetworkAttachmentName must be set"),
    ([{"interfaceName": "net1"}], f"{WHERE}[0]: exactly one of podNetworkName or podNetworkAttachmentName"),
    ([{"podNetworkName": "a", "interfaceName": "n1"}, {"podNetworkName": "b", "interfaceName": "n1"}],
     f"{WHERE}[1].interfaceName: 'n1' is already used by entry 0"),
    ([{"podNetworkName": "a", "interfaceName": "x" * 16}], f"{WHERE}[0].interfaceName: '{'x' * 16}' must be 1..15"),
    ([{"podNetworkName": "a", "interfaceName": "a/b"}], f"{WHERE}[0].interfaceName: 'a/b' must not contain"),
    ([{"podNetworkName": "a", "interfaceName": "a b"}], f"{WHERE}[0].interfaceName: 'a b' must not contain"),
    ([{"podNetworkName": "a", "interfaceName": ".."}], f"{WHERE}[0].interfaceName: '..' must not be '..'"),
    ([{"podNetworkName": "a", "isDefaultGW4": True}, {"podNetworkName": "b", "isDefaultGW4": True}],
     f"{WHERE}[1].isDefaultGW4: only one network may be the IPv4 default gateway"),
    ([{"podNetworkName": "a", "isDefaultGW6": True}, {"podNetworkName": "b", "isDefaultGW6": True}],
     f"{WHERE}[1].isDefaultGW6: only one network may be the IPv6 default gateway"),
])
def test_static_validation_rejected(make_pod: Any, nets: list[dict[str, Any]], message: str) -> None:
    assert message in rejection(make_pod, nets)


def test_static_validation_is_422_invalid(make_pod: Any) -> None:
    with pytest.raises(ApiException) as exc:
        make_pod("bad", [{"podNetworkName": "a"}, {"podNetworkName": "a"}])
    assert exc.value.status == 422, exc.value.body


def test_host_network_pod_with_networks_rejected(kube: Kube, namespace: str, nodes: FakeNodes,
                                                 controller: Any) -> None:
    body = pod_manifest("hn", [{"podNetworkName": "default"}], nodes.pod_placement())
    body["spec"]["hostNetwork"] = True
    with pytest.raises(ApiException) as exc:
        kube.core.create_namespaced_pod(namespace, body)  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
    assert f"{WHERE}: networks must not be set on a hostNetwork pod" in status_of(exc.value)["message"]


def test_invalid_json_rejected(make_pod: Any, kube: Kube, namespace: str) -> None:
    with pytest.raises(ApiException) as exc:
        make_pod("bad", None, **{names.NETWORKS_ANNOTATION: "[{"})
    assert f"{WHERE}: invalid JSON" in status_of(exc.value)["message"]


def test_default_auto_populated_without_gate(make_pod: Any) -> None:
    pod = make_pod("plain", None)
    ann = pod["metadata"]["annotations"]
    assert json.loads(ann[names.NETWORKS_ANNOTATION]) == [{"podNetworkName": names.DEFAULT_NETWORK}]
    assert not pod["spec"].get("schedulingGates")


def test_secondary_network_pod_gets_gates(make_pod: Any) -> None:
    pod = make_pod("multi", [{"podNetworkName": "mna-nonexistent"}])
    assert {"name": names.SCHEDULING_GATE} in pod["spec"]["schedulingGates"]
    assert {"conditionType": names.READINESS_CONDITION} in pod["spec"]["readinessGates"]


def test_networks_annotation_immutable(make_pod: Any, kube: Kube, namespace: str) -> None:
    make_pod("p", [{"podNetworkName": "mna-x"}])
    with pytest.raises(ApiException) as exc:
        kube.core.patch_namespaced_pod("p", namespace, {"metadata": {"annotations": {
            names.NETWORKS_ANNOTATION: json.dumps([{"podNetworkName": "mna-y"}])}}})
    assert "is immutable once the pod exists" in status_of(exc.value)["message"]
    assert exc.value.status == 422, exc.value.body  # an immutable field: Invalid, as for spec fields
    # pods/status carries annotations too: the same refusal there
    with pytest.raises(ApiException) as exc:
        kube.core.patch_namespaced_pod_status("p", namespace, {"metadata": {"annotations": {
            names.NETWORKS_ANNOTATION: json.dumps([{"podNetworkName": "mna-y"}])}}})
    assert "is immutable once the pod exists" in status_of(exc.value)["message"]
    assert exc.value.status == 422, exc.value.body
    # and a status write that leaves the annotation alone is not the webhook's to judge
    kube.core.patch_namespaced_pod_status("p", namespace, {"metadata": {"annotations": {"mna/other": "1"}}})


def user_subject(user: str) -> dict[str, str]:
    return {"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}


@contextlib.contextmanager
def use_role(rbac: client.RbacAuthorizationV1Api, role: str, net: str) -> Iterator[Callable[[dict[str, str]], None]]:
    """A ClusterRole granting `use` of PodNetwork `net`. Yields a function that binds
    it cluster-wide to a subject; the role and its binding are removed at exit."""
    rbac.create_cluster_role({"metadata": {"name": role}, "rules": [{  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        "apiGroups": [names.GROUP], "resources": [names.POD_NETWORK_PLURAL], "resourceNames": [net],
        "verbs": ["use"]}]})

    def bind(subject: dict[str, str]) -> None:
        rbac.create_cluster_role_binding({  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
            "metadata": {"name": role}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                    "kind": "ClusterRole", "name": role},
            "subjects": [subject]})
    try:
        yield bind
    finally:
        deletes: tuple[Callable[[], object], ...] = (
            lambda: rbac.delete_cluster_role_binding(role), lambda: rbac.delete_cluster_role(role))
        for delete in deletes:
            try:
                delete()
            except ApiException:
                pass


def test_use_access_control(kube: Kube, kubeconfig: Any, namespace: str, networks: Networks,
                            nodes: FakeNodes) -> None:
    net = networks.network()
    user = f"mna-user-{namespace}"
    rbac = client.RbacAuthorizationV1Api(kube.api)
    rbac.create_namespaced_role(namespace, {  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        "metadata": {"name": "pods"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "delete"]}]})
    rbac.create_namespaced_role_binding(namespace, {  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        "metadata": {"name": "pods"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                  "name": "pods"},
        "subjects": [user_subject(user)]})
    as_user = Kube.from_kubeconfig(str(kubeconfig))
    as_user.api.set_default_header("Impersonate-User", user)  # type: ignore[attr-defined]  # missing from the stubs

    def create() -> None:
        as_user.core.create_namespaced_pod(namespace, pod_manifest(  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
            f"p{len(created)}", [{"podNetworkName": net}], nodes.pod_placement()))
        created.append(1)

    created: list[int] = []
    with pytest.raises(ApiException) as exc:
        create()
    assert f"user '{user}' may not use PodNetwork '{net}'" in status_of(exc.value)["message"]
    # A missing grant is Forbidden (API conventions), not an invalid object.
    assert exc.value.status == 403, exc.value.body

    role = f"mna-use-{namespace}"
    with use_role(rbac, role, net) as bind:
        rbac.create_namespaced_role_binding(namespace, {  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
            "metadata": {"name": "use"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                     "kind": "ClusterRole", "name": role},
            "subjects": [user_subject(user)]})
        # A RoleBinding cannot grant cluster-scoped resources: still denied.
        with pytest.raises(ApiException):
            create()
        bind(user_subject(user))
        create()
        assert created == [1]


def test_use_granted_to_service_account_admits_workload_pods(kube: Kube, namespace: str, networks: Networks,
                                                             nodes: FakeNodes) -> None:
    """A ReplicaSet's pods are requested by the replicaset controller: the grant on the pods'
    service account is what lets them in (as PodSecurityPolicy's `use` did)."""
    net = networks.network()
    apps = client.AppsV1Api(kube.api)
    rbac = client.RbacAuthorizationV1Api(kube.api)
    kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": "runner"}})  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
    role = f"mna-use-{namespace}"
    with use_role(rbac, role, net) as bind:
        bind({"kind": "ServiceAccount", "name": "runner", "namespace": namespace})
        template = pod_manifest("x", [{"podNetworkName": net}], nodes.pod_placement())
        template = {"metadata": {"labels": {"app": "rs"}, "annotations": template["metadata"]["annotations"]},
                    "spec": template["spec"]}
        template["spec"]["serviceAccountName"] = "runner"
        apps.create_namespaced_replica_set(namespace, {"metadata": {"name": "rs"}, "spec": {  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
            "replicas": 1, "selector": {"matchLabels": {"app": "rs"}}, "template": template}})
        wait_for("the ReplicaSet's pod to be admitted", lambda: kube.core.list_namespaced_pod(
            namespace, label_selector="app=rs").items, timeout=90)
        apps.delete_namespaced_replica_set("rs", namespace)


def test_use_of_the_network_admits_a_pod_through_its_attachment(kube: Kube, kubeconfig: Any, namespace: str,
                                                                 networks: Networks, nodes: FakeNodes) -> None:
    net = networks.network()
    make_attachment(kube, namespace, "fast", net)
    user = f"mna-user-{namespace}"
    rbac = client.RbacAuthorizationV1Api(kube.api)
    rbac.create_namespaced_role(namespace, {  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        "metadata": {"name": "pods"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]})
    rbac.create_namespaced_role_binding(namespace, {  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        "metadata": {"name": "pods"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                  "name": "pods"},
        "subjects": [user_subject(user)]})
    role = f"mna-use-{namespace}"
    as_user = Kube.from_kubeconfig(str(kubeconfig))
    as_user.api.set_default_header("Impersonate-User", user)  # type: ignore[attr-defined]  # missing from the stubs
    with use_role(rbac, role, net) as bind:
        bind(user_subject(user))

        def admitted() -> bool:
            try:
                as_user.core.create_namespaced_pod(namespace, pod_manifest(  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
                    "p", [{"podNetworkAttachmentName": "fast"}], nodes.pod_placement()))
            except ApiException as exc:
                if exc.status == 403:  # RBAC converges within moments of the binding
                    return False
                raise
            return True
        wait_for("the pod to be admitted", admitted, timeout=10)
