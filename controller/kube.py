"""The controller's only adapter to the Kubernetes API (the pinned `kubernetes` client).

Everything above this module deals in plain dicts and the small methods here,
so the decisions stay testable and the wire details stay in one place.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from podnetwork import names

Obj = dict[str, Any]


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_status(exc: BaseException, *codes: int) -> bool:
    return isinstance(exc, ApiException) and exc.status in codes


class Kube:
    """Thin, typed access to the objects the controller reads and writes."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.ext = client.ApiextensionsV1Api(api_client)
        self.admission = client.AdmissionregistrationV1Api(api_client)
        self.authz = client.AuthorizationV1Api(api_client)
        self.discovery = client.DiscoveryV1Api(api_client)

    @classmethod
    def from_kubeconfig(cls, path: str | None, pool_size: int = 32) -> Kube:
        cfg = client.Configuration()
        config.load_kube_config(config_file=path, client_configuration=cfg)
        # Workers run in parallel threads; the default pool of 4 would serialize them.
        cfg.connection_pool_maxsize = pool_size
        return cls(client.ApiClient(cfg))

    def plain(self, obj: Any) -> Obj:
        """A typed client model as the plain JSON dict the apiserver sent."""
        out: Obj = self.api.sanitize_for_serialization(obj)
        return out

    # --- KEP objects and our own kinds (custom resources) -----------------------------

    def get_cluster(self, group: str, plural: str, name: str) -> Obj | None:
        try:
            out: Obj = self.custom.get_cluster_custom_object(group, names.VERSION, plural, name)
            return out
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def get_namespaced(self, group: str, plural: str, namespace: str, name: str) -> Obj | None:
        try:
            out: Obj = self.custom.get_namespaced_custom_object(group, names.VERSION, namespace, plural, name)
            return out
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list_cluster(self, group: str, plural: str, selector: str | None = None) -> list[Obj]:
        items: list[Obj] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"limit": 500}
            if selector:
                kwargs["label_selector"] = selector
            if token:
                kwargs["_continue"] = token
            page = self.custom.list_cluster_custom_object(group, names.VERSION, plural, **kwargs)
            items.extend(page.get("items", []))
            token = page.get("metadata", {}).get("continue")
            if not token:
                return items

    def create_cluster(self, group: str, plural: str, body: Obj) -> Obj:
        out: Obj = self.custom.create_cluster_custom_object(group, names.VERSION, plural, body)
        return out

    def delete_cluster(self, group: str, plural: str, name: str, uid: str | None = None) -> bool:
        """Delete; False when it was already gone. `uid` guards against deleting a successor."""
        body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)) if uid else None
        try:
            self.custom.delete_cluster_custom_object(group, names.VERSION, plural, name, body=body)
            return True
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise

    def patch_cluster(self, group: str, plural: str, name: str, patch: Obj, status: bool = False) -> Obj:
        fn = self.custom.patch_cluster_custom_object_status if status else self.custom.patch_cluster_custom_object
        out: Obj = fn(group, names.VERSION, plural, name, patch)
        return out

    def patch_namespaced(self, group: str, plural: str, namespace: str, name: str, patch: Obj,
                         status: bool = False) -> Obj:
        fn = (self.custom.patch_namespaced_custom_object_status if status
              else self.custom.patch_namespaced_custom_object)
        out: Obj = fn(group, names.VERSION, namespace, plural, name, patch)
        return out

    # --- pods ---------------------------------------------------------------------------

    def get_pod(self, namespace: str, name: str) -> Obj | None:
        try:
            return self.plain(self.core.read_namespaced_pod(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list_pods(self) -> Iterator[Obj]:
        token = None
        while True:
            page = self.core.list_pod_for_all_namespaces(limit=500, _continue=token)
            for pod in page.items:
                yield self.plain(pod)
            token = page.metadata._continue
            if not token:
                return

    def json_patch_pod(self, namespace: str, name: str, ops: list[Obj]) -> Obj:
        # The typed client picks the patch content type from the body: a list -> JSON patch.
        return self.plain(self.core.patch_namespaced_pod(name, namespace, ops))

    def patch_pod_condition(self, namespace: str, name: str, condition: Obj) -> None:
        """Merge one condition into the pod's status (conditions merge by type)."""
        self.core.patch_namespaced_pod_status(name, namespace, {"status": {"conditions": [condition]}},
                                              _content_type="application/strategic-merge-patch+json")

    def event(self, obj: Obj, reason: str, message: str, kind: str = "Pod", type_: str = "Warning") -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        stamp = now_rfc3339()
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{meta['name']}.", namespace=namespace),
            involved_object=client.V1ObjectReference(
                kind=kind, name=meta["name"], namespace=meta.get("namespace"), uid=meta.get("uid"),
                api_version=obj.get("apiVersion", "v1")),
            reason=reason, message=message[:1024], type=type_, count=1,
            first_timestamp=stamp, last_timestamp=stamp,
            source=client.V1EventSource(component="multinet-controller"),
        )
        self.core.create_namespaced_event(namespace, body)

    # --- authorization (KEP Phase II: `use` of a PodNetwork) ----------------------------

    def may_use(self, user: Obj, resource: str, name: str, namespace: str | None = None) -> tuple[bool, str]:
        """Ask the apiserver whether the requesting user may `use` the named object."""
        review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user=user.get("username"), groups=user.get("groups"), uid=user.get("uid"),
            extra=user.get("extra"),
            resource_attributes=client.V1ResourceAttributes(
                group=names.GROUP, resource=resource, name=name, namespace=namespace, verb="use"),
        ))
        status = self.authz.create_subject_access_review(review).status
        return bool(status.allowed), status.reason or ""
