"""One watch stream: newline-delimited JSON events read off a chunked response.

An ERROR event carries a Status; it is raised typed (Gone for 410, when the
version asked for is older than the apiserver's watch cache remembers).
`close()` may be called from another thread and ends a blocked read at once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from kube.errors import Unreachable, api_errors, translate

Obj = dict[str, Any]
EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED", "BOOKMARK")


@dataclass(frozen=True)
class WatchEvent:
    type: str  # one of EVENT_TYPES
    object: Obj

    @property
    def resource_version(self) -> str:
        return str((self.object.get("metadata") or {}).get("resourceVersion") or "")


class Watch:
    def __init__(self, response: urllib3.BaseHTTPResponse, what: str) -> None:
        self._response = response
        self._what = what
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[WatchEvent]:
        try:
            with api_errors():
                for line in self._response:
                    if self._closed.is_set():
                        return
                    if line.strip():
                        yield self._event(line)
        except Unreachable:
            if not self._closed.is_set():
                raise  # a broken stream; one we closed ourselves just ends

    def _event(self, line: bytes) -> WatchEvent:
        try:
            doc = json.loads(line)
            kind, obj = doc["type"], doc["object"]
        except (ValueError, KeyError, TypeError):
            raise Unreachable(f"watch of {self._what}: undecodable event {line[:200]!r}") from None
        if kind == "ERROR":
            # The same chain as an HTTP error: the client's exception, holding the Status.
            status = obj if isinstance(obj, dict) else {}
            original = ApiException(status=int(status.get("code") or 500), reason=str(status.get("reason") or ""))
            original.body = json.dumps(status)
            raise translate(original) from original
        if kind not in EVENT_TYPES or not isinstance(obj, dict):
            raise Unreachable(f"watch of {self._what}: unexpected event {kind!r}")
        return WatchEvent(kind, obj)

    def close(self) -> None:
        """End the stream; safe from any thread, and more than once."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            # shutdown() unblocks a read in progress on another thread; close() alone does not.
            self._response.shutdown()
        except (ValueError, RuntimeError, OSError, AttributeError):
            pass  # already released or never connected: nothing is blocked on it
        # Closing drops the connection instead of pooling it: the rest of the stream
        # was never read, so it cannot carry another request.
        self._response.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
