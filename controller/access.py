"""KEP Phase II access control: may this user `use` that network? A cached SubjectAccessReview.

Allowed answers are reused for ALLOW_TTL seconds (denials never are), as the
apiserver's own webhook authorizer caches: a revoked grant takes up to
ALLOW_TTL to bite, and a burst of pods from one user costs one review.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from kube import Kube
from kube.resources import SUBJECT_ACCESS_REVIEWS
from podnetwork import names

ALLOW_TTL = 10.0  # seconds an allowed `use` answer is reused
MAX_ENTRIES = 10_000  # past this the cache starts over (bounded memory under many users)

AccessKey = tuple[str, str, str, str | None]  # (user info as JSON, resource, name, namespace)


def review(user: Mapping[str, Any], resource: str, name: str, namespace: str | None) -> dict[str, Any]:
    """The SubjectAccessReview asking whether `user` may `use` the named object."""
    attributes = {"group": names.GROUP, "resource": resource, "name": name, "verb": "use"}
    if namespace:
        attributes["namespace"] = namespace
    spec: dict[str, Any] = {"resourceAttributes": attributes}
    for field in ("uid", "groups", "extra"):
        if user.get(field):
            spec[field] = user[field]
    if user.get("username"):
        spec["user"] = user["username"]
    return {"apiVersion": SUBJECT_ACCESS_REVIEWS.api_version, "kind": SUBJECT_ACCESS_REVIEWS.kind, "spec": spec}


class AccessCache:
    def __init__(self, kube: Kube, ttl: float = ALLOW_TTL) -> None:
        self.kube = kube
        self.ttl = ttl
        self._allowed: dict[AccessKey, float] = {}
        self._lock = threading.Lock()

    def may_use(self, user: Mapping[str, Any], resource: str, name: str, namespace: str | None
                ) -> tuple[bool, str]:
        """(allowed, the authorizer's reason)."""
        key = (json.dumps(dict(user), sort_keys=True), resource, name, namespace)
        now = time.monotonic()
        with self._lock:
            if self._allowed.get(key, 0.0) > now:
                return True, ""
        status = self.kube.create(SUBJECT_ACCESS_REVIEWS, review(user, resource, name, namespace)).get("status") or {}
        allowed, reason = bool(status.get("allowed")), str(status.get("reason") or "")
        if allowed:
            with self._lock:
                if len(self._allowed) > MAX_ENTRIES:
                    self._allowed.clear()
                self._allowed[key] = now + self.ttl
        return allowed, reason
