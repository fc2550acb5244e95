"""AdmissionReview (admission.k8s.io/v1) in and out: the wire side of the pod webhooks.

The decisions are `admission`'s; this module reads the request, turns a mutation
into the RFC 6902 patch the apiserver applies and shapes the response. It is
kept to exactly that, without a framework's handler machinery in between
(finding handlers, copying and diffing the whole pod): admission is on the
path of every pod create, and its cost bounds the rate pods can be made at.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller import admission

Obj = dict[str, Any]
API_VERSION = "admission.k8s.io/v1"


class BadReview(Exception):
    """The request is not an AdmissionReview we can answer (answered as HTTP 400)."""


@dataclass(frozen=True)
class Request:
    uid: str
    operation: str
    pod: Obj
    old: Obj | None
    user: Obj
    dry_run: bool


def parse(review: Any) -> Request:
    """The fields admission needs, or BadReview naming the one missing."""
    if not isinstance(review, dict) or review.get("apiVersion") != API_VERSION \
            or review.get("kind") != "AdmissionReview":
        raise BadReview(f"expected an AdmissionReview of {API_VERSION}")
    request = review.get("request")
    if not isinstance(request, dict):
        raise BadReview("request: missing")
    resource = request.get("resource")
    if not isinstance(resource, dict) or any(resource.get(k) != v for k, v in admission.POD_RESOURCE.items()):
        raise BadReview(f"request.resource: this webhook serves core/v1 pods, not {resource!r}")
    operation = str(request.get("operation") or "")
    subresource = request.get("subResource") or ""
    # pods/status can change annotations too, so an UPDATE there is judged as one of the pod
    if subresource and (subresource, operation) != ("status", "UPDATE"):
        raise BadReview(f"request.subResource: this webhook serves pods and UPDATE of pods/status, "
                        f"not {operation} of {subresource!r}")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("request.uid: missing")
    pod, old, user = request.get("object"), request.get("oldObject"), request.get("userInfo")
    if not isinstance(pod, dict):
        raise BadReview("request.object: missing")
    if not isinstance(user, dict):
        raise BadReview("request.userInfo: missing")
    if operation == "UPDATE" and not isinstance(old, dict):
        raise BadReview("request.oldObject: missing on UPDATE")
    return Request(uid=uid, operation=operation, pod=pod,
                   old=old if isinstance(old, dict) else None, user=user,
                   dry_run=bool(request.get("dryRun")))


def json_patch(original: Mapping[str, Any], changes: Mapping[str, Any], prefix: str = "") -> list[Obj]:
    """RFC 6902 operations that merge `changes` (a partial object) into `original`.

    Maps present on both sides are merged key by key; any other value is set
    whole ("add" replaces a member that exists, and creates one that does not).
    """
    ops: list[Obj] = []
    for key, value in changes.items():
        path = f"{prefix}/{_escape(key)}"
        current = original.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            ops += json_patch(current, value, path)
        else:
            ops.append({"op": "add", "path": path, "value": value})
    return ops


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def allowed(uid: str, patch: list[Obj] | None = None) -> Obj:
    response: Obj = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode("ascii")
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


def denied(uid: str, exc: admission.Denied) -> Obj:
    status = {"code": exc.code, "message": str(exc), "reason": exc.reason}
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview",
            "response": {"uid": uid, "allowed": False, "status": status}}


# (request) -> None, raising admission.Denied; may block (it can ask the apiserver)
Validate = Callable[[Request], None]
# runs a blocking call off the event loop
Offload = Callable[[Callable[[], None]], Awaitable[None]]


class Responder:
    """Answers one AdmissionReview for the webhook `webhook` (the request's path; kopf's WebhookFn protocol)."""

    def __init__(self, validate: Validate, offload: Offload) -> None:
        self._validate = validate
        self._offload = offload

    async def __call__(self, review: Any, *, webhook: str | None = None, **_: Any) -> Obj:
        request = parse(review)
        if webhook not in admission.OPERATIONS:
            raise BadReview(f"no webhook at /{webhook}")
        if request.operation not in admission.OPERATIONS[webhook]:
            return allowed(request.uid)  # not ours to judge (the configurations do not send it)
        try:
            if webhook == admission.MUTATE_ID:
                # Pure computation over the pod: answered on the loop, no hand-over.
                return allowed(request.uid, json_patch(request.pod, admission.mutate(request.pod)))
            await self._offload(lambda: self._validate(request))
            return allowed(request.uid)
        except admission.Denied as exc:
            return denied(request.uid, exc)
