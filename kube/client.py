"""The verbs: get, list (paged), create, replace, patch, delete and watch, on any resource.

Objects go in and come out as the plain JSON dicts the apiserver speaks, never
the client's generated models: one code path for core kinds and custom
resources, no model round trip per object, and callers that stay testable
with literal dicts. Every failure is a typed `KubeError` (see `errors`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kube.credentials import load_kubeconfig
from kube.errors import KubeError, NotFound, api_errors
from kube.resources import Resource
from kube.watch import Watch

Obj = dict[str, Any]
Patch = Obj | list[Obj]  # an object patch, or JSON-patch operations
Query = Sequence[tuple[str, str]]
PAGE_SIZE = 500


class PatchType(enum.Enum):
    MERGE = "application/merge-patch+json"  # RFC 7386; the only object patch custom resources take
    STRATEGIC = "application/strategic-merge-patch+json"  # built-in kinds: lists merge by key
    JSON = "application/json-patch+json"  # RFC 6902 operations, `test` included


@dataclass(frozen=True)
class Listing:
    items: list[Obj]
    resource_version: str  # where a watch resumes to see every later change


class _Response(Protocol):
    status: int
    response: urllib3.BaseHTTPResponse

    def read(self) -> bytes: ...


class _Generated(Protocol):
    """The two calls every generated API method of the pinned client makes (its
    request building and auth, then the HTTP exchange). The PyPI stubs declare
    only part of `ApiClient`, so this names the part used here."""

    def param_serialize(self, method: str, resource_path: str, query_params: list[tuple[str, str]] | None = None,
                        header_params: dict[str, str] | None = None, body: Any = None,
                        auth_settings: list[str] | None = None) -> tuple[Any, ...]: ...

    def call_api(self, *request: Any, _request_timeout: Any = None) -> _Response: ...


class Kube:
    """A connection to one apiserver and the verbs over it (thread-safe: one pool)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._gen = cast(_Generated, api)

    @classmethod
    def from_kubeconfig(cls, path: str | None, pool_size: int = 32) -> Kube:
        cfg = client.Configuration()
        load_kubeconfig(path, cfg)
        # Workers run in parallel threads; the default pool of 4 would serialize them.
        cfg.connection_pool_maxsize = pool_size  # type: ignore[attr-defined]  # missing from the stubs
        return cls(client.ApiClient(cfg))

    @classmethod
    def in_cluster(cls, pool_size: int = 32) -> Kube:
        """The pod's own service account (a DaemonSet's or Deployment's process)."""
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)
        cfg.connection_pool_maxsize = pool_size  # type: ignore[attr-defined]  # missing from the stubs
        return cls(client.ApiClient(cfg))

    @classmethod
    def connect(cls, kubeconfig: str | None) -> Kube:
        """A kubeconfig when one is given, else the in-cluster service account."""
        return cls.from_kubeconfig(kubeconfig) if kubeconfig else cls.in_cluster()

    @property
    def configuration(self) -> client.Configuration:
        cfg: client.Configuration = self.api.configuration  # type: ignore[attr-defined]  # missing from the stubs
        return cfg

    # --- one request -------------------------------------------------------------------

    def _send(self, method: str, path: str, query: Query = (), body: Any = None,
              content_type: str = "application/json", timeout: Any = None) -> _Response:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        with api_errors():
            request = self._gen.param_serialize(method=method, resource_path=path, query_params=list(query),
                                                header_params=headers, body=body, auth_settings=["BearerToken"])
            response = self._gen.call_api(*request, _request_timeout=timeout)
            if not 200 <= response.status <= 299:
                response.read()
                raise ApiException(http_resp=response)  # type: ignore[arg-type]  # a RESTResponse
        return response

    def request(self, method: str, path: str, query: Query = (), body: Any = None,
                content_type: str = "application/json") -> Obj:
        """One call, its JSON answer decoded (an empty answer is `{}`)."""
        response = self._send(method, path, query, body, content_type)
        with api_errors():
            data = response.read()
        try:
            doc = json.loads(data) if data else {}
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise KubeError(f"{method} {path}: the apiserver's answer is not a JSON object: {data[:200]!r}")
        return doc

    # --- the verbs -------------------------------------------------------------------------

    def get(self, resource: Resource, name: str, namespace: str | None = None,
            subresource: str | None = None) -> Obj:
        """The object; NotFound when it does not exist."""
        return self.request("GET", resource.path(namespace, name, subresource))

    def find(self, resource: Resource, name: str, namespace: str | None = None) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return self.get(resource, name, namespace)
        except NotFound:
            return None

    def pages(self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None,
              field_selector: str | None = None, page_size: int = PAGE_SIZE) -> Iterator[Obj]:
        """Every page of a LIST, each the raw list object (items, metadata.resourceVersion).

        All pages come from one consistent snapshot; Gone when the continue token
        expired before the last page was read.
        """
        query = [("limit", str(page_size))]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        token = ""
        while True:
            page = self.request("GET", resource.path(namespace),
                                [*query, ("continue", token)] if token else query)
            yield page
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return

    def listing(self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                field_selector: str | None = None) -> Listing:
        items: list[Obj] = []
        version = ""
        for page in self.pages(resource, namespace, label_selector=label_selector, field_selector=field_selector):
            items.extend(page.get("items") or [])
            version = str((page.get("metadata") or {}).get("resourceVersion") or version)
        return Listing(items, version)

    def list(self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None,
             field_selector: str | None = None) -> list[Obj]:
        return self.listing(resource, namespace, label_selector=label_selector,
                            field_selector=field_selector).items

    def create(self, resource: Resource, body: Obj, namespace: str | None = None) -> Obj:
        """The created object; AlreadyExists when the name is taken."""
        return self.request("POST", resource.path(namespace), body=body)

    def replace(self, resource: Resource, name: str, body: Obj, namespace: str | None = None,
                subresource: str | None = None) -> Obj:
        """PUT the whole object; Conflict when its metadata.resourceVersion is stale."""
        return self.request("PUT", resource.path(namespace, name, subresource), body=body)

    def patch(self, resource: Resource, name: str, patch: Patch, namespace: str | None = None, *,
              subresource: str | None = None, patch_type: PatchType | None = None) -> Obj:
        """A merge patch (a dict) or a JSON patch (a list), unless `patch_type` says otherwise."""
        kind = patch_type or (PatchType.JSON if isinstance(patch, list) else PatchType.MERGE)
        return self.request("PATCH", resource.path(namespace, name, subresource), body=patch,
                            content_type=kind.value)

    def delete(self, resource: Resource, name: str, namespace: str | None = None, *, uid: str | None = None,
               grace_period_seconds: int | None = None) -> None:
        """Delete; NotFound when it is gone already, Conflict when `uid` names a predecessor."""
        options: Obj = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if uid:
            options["preconditions"] = {"uid": uid}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        self.request("DELETE", resource.path(namespace, name), body=options)

    def watch(self, resource: Resource, namespace: str | None = None, *, resource_version: str,
              label_selector: str | None = None, field_selector: str | None = None,
              timeout_seconds: int = 240) -> Watch:
        """A watch from `resource_version`, ended by the server after `timeout_seconds`.

        Gone (at once or from the stream) when that version is too old.
        """
        query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("resourceVersion", resource_version),
                 ("timeoutSeconds", str(timeout_seconds))]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        # The read timeout outlasts the server's own end of the watch, so only a dead
        # connection trips it.
        response = self._send("GET", resource.path(namespace), query, timeout=(10.0, timeout_seconds + 30.0))
        return Watch(response.response, f"{resource}")
