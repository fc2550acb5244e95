"""PodNetworkAccessControl (KEP Phase II): using a PodNetwork needs the `use` verb."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from conftest import Networks, unique, wait_for
from features import GROUP
from pods import pod

pytestmark = pytest.mark.feature("PodNetworkAccessControl")


def as_user(pytestconfig: pytest.Config, user: str) -> client.CoreV1Api:
    api = config.new_client_from_config(str(pytestconfig.getoption("--kubeconfig")))
    api.set_default_header("Impersonate-User", user)
    return client.CoreV1Api(api)


def test_use_verb_is_required(
    pytestconfig: pytest.Config, api: client.ApiClient, networks: Networks, namespace: str,
) -> None:
    net = networks.create()["metadata"]["name"]
    networks.ready(net)
    user = unique("kep-user")
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "pods"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get"]}],
    })
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pods"},
        "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
    })
    them = as_user(pytestconfig, user)
    body = pod(unique("p"), [{"podNetworkName": net}])
    with pytest.raises(ApiException) as denied:
        them.create_namespaced_pod(namespace, body, dry_run="All")
    # The KEP names no status code for this denial; any refusal naming the network counts.
    assert denied.value.status in (400, 403, 422), denied.value.body
    assert net in json.loads(denied.value.body).get("message", "")

    role = unique("kep-use")
    rbac.create_cluster_role({"metadata": {"name": role}, "rules": [
        {"apiGroups": [GROUP], "resources": ["podnetworks"], "resourceNames": [net], "verbs": ["use"]}]})
    rbac.create_cluster_role_binding({
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
    })
    try:
        def admitted() -> bool:
            try:
                them.create_namespaced_pod(namespace, body, dry_run="All")
            except ApiException as err:
                if err.status == 403:  # RBAC caches converge within seconds
                    return False
                raise
            return True
        wait_for(admitted, networks.timeout, "the pod to be admitted once `use` is granted")
    finally:
        rbac.delete_cluster_role_binding(role)
        rbac.delete_cluster_role(role)
