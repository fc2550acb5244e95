"""Small helpers over the Kubernetes client: waiting, conditions, names."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")
POLL = 0.5

# The client's models type every field Optional and its methods take models;
# the suite writes bodies as the API's own JSON (the client validates them
# into its models) and reads objects it has just checked exist. `Body` and
# `Obj` mark those two boundaries.
Body = Any
Obj = Any


def body(data: dict[str, Any]) -> Body:
    return data


def as_dict(data: object) -> dict[str, Any]:
    """A custom object as the client returns it (a JSON mapping)."""
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    return data


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll until `predicate` returns something truthy; fail the test naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL)


def holds(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    """Assert `predicate` stays true, read repeatedly over `seconds` (not one read at t=0)."""
    deadline = time.monotonic() + seconds
    reads = 0
    while True:
        reads += 1
        assert predicate(), f"{what} stopped holding after {reads} reads"
        if time.monotonic() >= deadline:
            return
        time.sleep(POLL)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def absent(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as err:
        if err.status == 404:
            return True
        raise
    return False


def refusal(err: ApiException) -> dict[str, Any]:
    """The Status object of a refused request (its message, reason, details)."""
    text = err.body.decode() if isinstance(err.body, bytes) else (err.body or "")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {"message": text}
    return data if isinstance(data, dict) else {"message": text}


def ignore_missing(call: Callable[[], Any]) -> None:
    """Run a delete; an object already gone is fine."""
    try:
        call()
    except ApiException as err:
        if err.status != 404:
            raise


@dataclass(frozen=True)
class Clients:
    api: client.ApiClient

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def rbac(self) -> client.RbacAuthorizationV1Api:
        return client.RbacAuthorizationV1Api(self.api)

    @property
    def discovery(self) -> client.DiscoveryV1Api:
        return client.DiscoveryV1Api(self.api)

    @property
    def networking(self) -> client.NetworkingV1Api:
        return client.NetworkingV1Api(self.api)

    @property
    def extensions(self) -> client.ApiextensionsV1Api:
        return client.ApiextensionsV1Api(self.api)


def ready_nodes(core: client.CoreV1Api) -> list[str]:
    """`kubernetes.io/hostname` of every Ready, schedulable node without a NoSchedule taint."""
    names = []
    node: Obj
    for node in core.list_node().items:
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        tainted = any(t.effect in ("NoSchedule", "NoExecute") for t in node.spec.taints or [])
        hostname = (node.metadata.labels or {}).get("kubernetes.io/hostname")
        if ready and not node.spec.unschedulable and not tainted and hostname:
            names.append(hostname)
    return sorted(names)


def pod_phase(core: client.CoreV1Api, namespace: str, name: str) -> str:
    pod: Obj = core.read_namespaced_pod(name, namespace)
    return str(pod.status.phase or "")


def pod_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
