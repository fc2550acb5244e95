"""Events that say once why the controller will not act on an object.

A reconcile runs on every change and every resync; the user needs the reason
once per object and message, not a new Event each time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from kube import EventWriter, KubeError, ObjectRef

log = logging.getLogger(__name__)


class Notices:
    def __init__(self, events: EventWriter) -> None:
        self.events = events
        self._said: dict[str, str] = {}  # object uid -> last message posted
        self._lock = threading.Lock()

    def tell(self, obj: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        uid = str(obj["metadata"].get("uid") or "")
        with self._lock:
            if self._said.get(uid) == message:
                return
            self._said[uid] = message
        try:
            self.events.post(ObjectRef.of(obj, kind=kind), reason, message)
        except KubeError as exc:  # an Event is advisory; never fail the reconcile over it
            log.warning("could not post event for %s %s: %s", kind, obj["metadata"].get("name"), exc)
            with self._lock:
                self._said.pop(uid, None)  # try again on the next pass

    def clear(self, obj: Mapping[str, Any]) -> None:
        with self._lock:
            self._said.pop(str(obj["metadata"].get("uid") or ""), None)
