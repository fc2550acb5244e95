"""Ways around the `use` check, tried on the real apiserver: a network reached
through an attachment, a service account of the same name in another
namespace, an ownerless pod naming a privileged service account it may not
borrow. Each refusal has its positive control beside it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.controller.controller_support import FakeNodes, Kube, Networks, make_attachment, pod_manifest, status_of
from tests.controller.test_controller_admission import use_role, user_subject
from tests.support.wait import wait_for

pytestmark = pytest.mark.cluster


def may_create_pods(rbac: client.RbacAuthorizationV1Api, namespace: str, user: str) -> None:
    rbac.create_namespaced_role(namespace, {  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        "metadata": {"name": "pods"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]})
    rbac.create_namespaced_role_binding(namespace, {  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        "metadata": {"name": "pods"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                  "name": "pods"}, "subjects": [user_subject(user)]})


def impersonating(kubeconfig: Any, user: str) -> Kube:
    as_user = Kube.from_kubeconfig(str(kubeconfig))
    as_user.api.set_default_header("Impersonate-User", user)  # type: ignore[attr-defined]  # missing from the stubs
    return as_user


def create_status(kube: Kube, namespace: str, body: dict[str, Any]) -> tuple[int, str]:
    """The HTTP status of creating the pod (201 when admitted) and the refusal's message."""
    try:
        kube.core.create_namespaced_pod(namespace, body)  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
    except ApiException as exc:
        return int(exc.status or 0), str(status_of(exc)["message"])
    return 201, ""


def admitted(kube: Kube, namespace: str, body: dict[str, Any]) -> None:
    """Create the pod, waiting out RBAC's convergence after a new binding."""
    wait_for(f"pod {body['metadata']['name']} admitted",
             lambda: create_status(kube, namespace, body)[0] == 201, timeout=20)


def refused_use(kube: Kube, namespace: str, body: dict[str, Any], what: str) -> None:
    status, message = create_status(kube, namespace, body)
    assert status == 403 and f"may not use {what}" in message, (status, message)


@pytest.fixture
def elsewhere(kube: Kube) -> Iterator[str]:
    name = f"mna-other-{uuid.uuid4().hex[:6]}"
    kube.core.create_namespace({"metadata": {"name": name}})  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
    try:
        yield name
    finally:
        kube.core.delete_namespace(name)


def test_an_attachment_does_not_let_a_user_onto_a_network_it_may_not_use(
        kube: Kube, kubeconfig: Any, namespace: str, networks: Networks, nodes: FakeNodes) -> None:
    net = networks.network()
    make_attachment(kube, namespace, "fast", net)
    user = f"mna-user-{namespace}"
    rbac = client.RbacAuthorizationV1Api(kube.api)
    may_create_pods(rbac, namespace, user)
    as_user = impersonating(kubeconfig, user)
    admitted(as_user, namespace, pod_manifest("plain", None, nodes.pod_placement()))  # control: it may create pods
    through = pod_manifest("through", [{"podNetworkAttachmentName": "fast"}], nodes.pod_placement())
    refused_use(as_user, namespace, through, f"PodNetworkAttachment {namespace}/fast")


def test_a_grant_to_a_service_account_of_another_namespace_admits_no_pod_here(
        kube: Kube, kubeconfig: Any, namespace: str, elsewhere: str, networks: Networks, nodes: FakeNodes) -> None:
    """`runner` in another namespace may use the network; a pod here that
    names its own `runner` runs as a different identity and is refused, as
    is the bare pod of a user who borrows a service account name."""
    net = networks.network()
    user = f"mna-user-{namespace}"
    rbac = client.RbacAuthorizationV1Api(kube.api)
    for ns in (namespace, elsewhere):
        kube.core.create_namespaced_service_account(ns, {"metadata": {"name": "runner"}})  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        may_create_pods(rbac, ns, user)
    as_user = impersonating(kubeconfig, user)

    def pod(name: str) -> dict[str, Any]:
        body = pod_manifest(name, [{"podNetworkName": net}], nodes.pod_placement())
        body["spec"]["serviceAccountName"] = "runner"
        return body

    role = f"mna-use-{namespace}"
    with use_role(rbac, role, net) as bind:
        bind({"kind": "ServiceAccount", "name": "runner", "namespace": elsewhere})
        # Control: in the namespace of the granted account the same pod is admitted.
        admitted(as_user, elsewhere, pod("there"))
        refused_use(as_user, namespace, pod("here"), f"PodNetwork '{net}'")
