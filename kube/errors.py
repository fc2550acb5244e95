"""Typed errors of the Kubernetes API, each chained to the client's exception.

Callers catch what they mean (`NotFound`, `Conflict`, `AlreadyExists`...)
instead of catching everything and testing a status code; the client's
`ApiException` stays reachable as `__cause__` (as kopf's
`_cogs/clients/errors.py` does with aiohttp's). A 409 is `AlreadyExists` when
the apiserver's Status says so (a create of a taken name) and `Conflict`
otherwise (a stale resourceVersion, a failed uid precondition).

`temporary` says whether the same request may succeed later unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError


class KubeError(Exception):
    """A request the apiserver refused, or could not be asked."""

    temporary = False

    def __init__(self, message: str, *, status: int = 0, reason: str = "", details: dict[str, Any] | None = None
                 ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason  # the Status reason: "NotFound", "AlreadyExists", "Expired"...
        self.details = details or {}


class BadRequest(KubeError):
    """400: the request itself is malformed."""


class Unauthorized(KubeError):
    """401: the credentials were not accepted."""


class Forbidden(KubeError):
    """403: authenticated, but not allowed (RBAC, or an admission webhook's denial)."""


class NotFound(KubeError):
    """404: the object (or its kind) does not exist."""


class Conflict(KubeError):
    """409: the object changed meanwhile (resourceVersion or uid precondition)."""

    temporary = True


class AlreadyExists(KubeError):
    """409 AlreadyExists: a create of a name that is taken."""


class Gone(KubeError):
    """410: a resourceVersion or continue token too old to resume from: list again."""

    temporary = True


class Invalid(KubeError):
    """422: the object breaks a validation rule; `details["causes"]` names the fields."""


class TooManyRequests(KubeError):
    """429: throttled (API priority and fairness); retry after a pause."""

    temporary = True


class ServerError(KubeError):
    """5xx: the apiserver (or a webhook behind it) failed."""

    temporary = True


class Unreachable(KubeError):
    """No answer: connection refused or reset, TLS failure, timeout."""

    temporary = True


_BY_STATUS: dict[int, type[KubeError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 410: Gone,
    422: Invalid, 429: TooManyRequests,
}


def from_status(status: int, body: dict[str, Any] | None) -> KubeError:
    """The typed error for an HTTP status and the apiserver's Status object (or None)."""
    body = body or {}
    reason = str(body.get("reason") or "")
    message = str(body.get("message") or f"HTTP {status}")
    details = body.get("details") if isinstance(body.get("details"), dict) else None
    if status == 409 and reason == "AlreadyExists":
        cls: type[KubeError] = AlreadyExists
    elif status >= 500:
        cls = ServerError
    elif status == 0:
        cls = Unreachable
    else:
        cls = _BY_STATUS.get(status, KubeError)
    return cls(message, status=status, reason=reason, details=details)


def _status_body(exc: ApiException) -> dict[str, Any] | None:
    raw: Any = exc.body
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return {"message": str(raw)[:1024]}
    return doc if isinstance(doc, dict) else None


def translate(exc: ApiException) -> KubeError:
    body = _status_body(exc)
    if body is None and exc.reason:
        body = {"message": f"HTTP {exc.status}: {exc.reason}"}
    return from_status(exc.status or 0, body)


@contextmanager
def api_errors() -> Iterator[None]:
    """Turn the client's and urllib3's exceptions into typed ones, chained to the original."""
    try:
        yield
    except ApiException as exc:
        raise translate(exc) from exc
    except (HTTPError, OSError) as exc:
        raise Unreachable(f"apiserver unreachable: {exc}") from exc
