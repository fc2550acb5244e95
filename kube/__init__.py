"""The one adapter to the Kubernetes API: the only package that imports `kubernetes`.

- `Kube`: get/find/list (paged)/create/replace/patch/delete/watch on any `Resource`, plain dicts in and out.
- typed errors (`KubeError` > `NotFound`, `Conflict`, `AlreadyExists`, `Invalid`...) chained to the client's.
- `Informer`: a list+watch cache with handlers, relisting on 410 Gone.
- `EventWriter`, `clock` (RFC 3339), `pki` (certificates).
"""

from kube.client import Kube, Listing, Obj, PatchType
from kube.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeError,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
    Unreachable,
)
from kube.events import EventWriter, ObjectRef
from kube.informer import Change, ChangeType, Informer
from kube.resources import Resource
from kube.watch import Watch, WatchEvent

__all__ = [
    "AlreadyExists", "BadRequest", "Change", "ChangeType", "Conflict", "EventWriter", "Forbidden", "Gone",
    "Informer", "Invalid", "Kube", "KubeError", "Listing", "NotFound", "Obj", "ObjectRef", "PatchType",
    "Resource", "ServerError", "TooManyRequests", "Unauthorized", "Unreachable", "Watch", "WatchEvent",
]
