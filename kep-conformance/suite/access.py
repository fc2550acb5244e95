"""Users for access tests: RBAC grants and impersonated clients.

KEP-3698 requirement 16 (Phase II): access to a PodNetwork is controlled by
RBAC. The suite's admin kubeconfig impersonates a fresh user that may only
create pods in a namespace, then grants it `use` on chosen objects.
"""

from __future__ import annotations

from typing import Any, cast

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from suite.kube import body, ignore_missing, unique, wait_for

RBAC_GROUP = "rbac.authorization.k8s.io"


def user_client(new_api: Callable[[], client.ApiClient], user: str) -> client.CoreV1Api:
    api = new_api()
    cast(Any, api).set_default_header("Impersonate-User", user)  # absent from the stubs
    return client.CoreV1Api(api)


def grant_pods(rbac: client.RbacAuthorizationV1Api, namespace: str, user: str) -> None:
    """Let `user` create and read pods in `namespace`, nothing more."""
    rbac.create_namespaced_role(namespace, body({
        "metadata": {"name": "kep-pods"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get"]}]}))
    rbac.create_namespaced_role_binding(namespace, body({
        "metadata": {"name": "kep-pods"},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "kep-pods"},
        "subjects": [{"kind": "User", "name": user, "apiGroup": RBAC_GROUP}]}))


@contextmanager
def granted_use(rbac: client.RbacAuthorizationV1Api, user: str, group: str, resource: str, names: list[str],
                namespace: str | None = None) -> Iterator[None]:
    """`use` on the named objects for `user`: cluster-wide for PodNetworks, in `namespace` for attachments."""
    name = unique("kep-use")
    rules = [{"apiGroups": [group], "resources": [resource], "resourceNames": names, "verbs": ["use"]}]
    ref = {"apiGroup": RBAC_GROUP, "kind": "ClusterRole" if namespace is None else "Role", "name": name}
    subjects = [{"kind": "User", "name": user, "apiGroup": RBAC_GROUP}]
    if namespace is None:
        rbac.create_cluster_role(body({"metadata": {"name": name}, "rules": rules}))
        rbac.create_cluster_role_binding(body({"metadata": {"name": name}, "roleRef": ref, "subjects": subjects}))
    else:
        rbac.create_namespaced_role(namespace, body({"metadata": {"name": name}, "rules": rules}))
        rbac.create_namespaced_role_binding(namespace, body({"metadata": {"name": name}, "roleRef": ref,
                                                             "subjects": subjects}))
    try:
        yield
    finally:
        if namespace is None:
            ignore_missing(lambda: rbac.delete_cluster_role_binding(name))
            ignore_missing(lambda: rbac.delete_cluster_role(name))
        else:
            ignore_missing(lambda: rbac.delete_namespaced_role_binding(name, namespace))
            ignore_missing(lambda: rbac.delete_namespaced_role(name, namespace))


def admitted_eventually(create: Callable[[], object], timeout: float, what: str) -> None:
    """RBAC caches converge within seconds: retry a 403 until `create` is admitted."""
    def attempt() -> bool:
        try:
            create()
        except ApiException as err:
            if err.status == 403:
                return False
            raise
        return True
    wait_for(attempt, timeout, what)
