"""The one Event writer (core/v1 Events, as `kubectl describe` shows them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kube import clock
from kube.client import Kube, Obj
from kube.resources import EVENTS

MESSAGE_MAX = 1024  # longer messages are cut: an Event is a hint, the object holds the truth


@dataclass(frozen=True)
class ObjectRef:
    """What an Event is about."""

    kind: str
    name: str
    namespace: str | None = None  # None for a cluster-scoped object
    uid: str | None = None
    api_version: str = "v1"

    @classmethod
    def of(cls, obj: Mapping[str, Any], kind: str | None = None) -> ObjectRef:
        meta = obj.get("metadata") or {}
        return cls(kind=kind or str(obj.get("kind") or ""), name=str(meta.get("name") or ""),
                   namespace=meta.get("namespace"), uid=meta.get("uid"),
                   api_version=str(obj.get("apiVersion") or "v1"))


class EventWriter:
    """Posts Events as `component` (and `host`, for a per-node agent)."""

    def __init__(self, kube: Kube, component: str, host: str | None = None) -> None:
        self.kube = kube
        self.component = component
        self.host = host

    def post(self, about: ObjectRef, reason: str, message: str, type_: str = "Warning") -> Obj:
        """Create one Event; an object without a namespace gets its Event in `default`."""
        namespace = about.namespace or "default"
        stamp = clock.now_rfc3339()
        source = {"component": self.component, **({"host": self.host} if self.host else {})}
        involved = {"kind": about.kind, "name": about.name, "apiVersion": about.api_version}
        if about.namespace:
            involved["namespace"] = about.namespace
        if about.uid:
            involved["uid"] = about.uid
        body: Obj = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{about.name}.", "namespace": namespace},
            "involvedObject": involved, "reason": reason, "message": message[:MESSAGE_MAX], "type": type_,
            "count": 1, "firstTimestamp": stamp, "lastTimestamp": stamp, "source": source,
        }
        return self.kube.create(EVENTS, body, namespace)
