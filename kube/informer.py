"""An informer: a local cache of one resource, kept by LIST then WATCH.

The watch resumes from the last resourceVersion it saw (bookmarks keep that
fresh), so a watch the server ends costs no new listing; only 410 Gone (the
version fell out of the apiserver's watch cache) or a periodic resync costs a
relist. A relist diffs against the cache and reports what vanished meanwhile
as DELETED, so no deletion is lost across a gap (client-go's
DeletedFinalStateUnknown, in small).

Handlers run on the informer's thread, one change at a time, and must only
record what they saw or mark work dirty (STYLE.md: decide, then program).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kube.client import Kube
from kube.errors import Gone, KubeError, NotFound
from kube.resources import Resource
from kube.watch import Watch, WatchEvent

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace or "", name)
WATCH_SECONDS = 240
RETRY_SECONDS = 2.0


class ChangeType(enum.Enum):
    LISTED = "LISTED"  # seen in a (re)list: new, changed or not
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"  # from the watch, or missing from a relist (obj: the last state seen)


@dataclass(frozen=True)
class Change:
    type: ChangeType
    obj: Obj
    old: Obj | None  # the cached state before this change, if any

    @property
    def deleted(self) -> bool:
        return self.type is ChangeType.DELETED


Handler = Callable[[Change], None]


def key_of(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class Informer:
    """One resource (optionally one namespace, narrowed by selectors), cached as plain dicts.

    `transform` shrinks each object before it is stored and handed to handlers
    (drop what no reader needs: a cluster's pods are large). A kind that is not
    installed (404) is an empty cache, synced, listed again after a pause.
    """

    def __init__(self, kube: Kube, resource: Resource, *, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 transform: Callable[[Obj], Obj] | None = None, resync_seconds: float | None = None,
                 watch_seconds: int = WATCH_SECONDS, retry_seconds: float = RETRY_SECONDS,
                 name: str | None = None) -> None:
        self.kube = kube
        self.resource = resource
        self.name = name or str(resource)
        self._namespace = namespace
        self._selectors = {"label_selector": label_selector, "field_selector": field_selector}
        self._transform = transform
        self._resync = resync_seconds
        self._watch_seconds = watch_seconds
        self._retry = retry_seconds
        self._handlers: list[Handler] = []
        self._items: dict[Key, Obj] = {}
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._stream: Watch | None = None
        self._thread: threading.Thread | None = None
        self.resource_version: str | None = None  # the last version seen; None until listed
        self.lists = 0  # LISTs done: one at start, one per relist

    # --- reading the cache ---------------------------------------------------------------

    def get(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._items.get((namespace, name))

    def items(self) -> list[Obj]:
        with self._lock:
            return list(self._items.values())

    def keys(self) -> list[Key]:
        with self._lock:
            return list(self._items)

    def put(self, obj: Obj) -> None:
        """Store a fresher copy read directly (a GET after a cache miss); no handler runs."""
        obj = self._transform(obj) if self._transform else obj
        with self._lock:
            self._items[key_of(obj)] = obj

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Whether the first LIST has landed (within `timeout` seconds)."""
        return self._synced.wait(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def watching(self) -> bool:
        """Whether a watch is open right now."""
        return self._stream is not None

    def add_handler(self, handler: Handler) -> None:
        """`handler(change)` for every change from now on (add before `start` to see the first LIST)."""
        self._handlers.append(handler)

    # --- running ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name=f"informer-{self.name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run(self) -> None:
        """List, then watch until stopped; relist on Gone, on a resync, and after a failed list."""
        listed_at = 0.0
        while not self._stop.is_set():
            try:
                if self.resource_version is None or self._resync_due(listed_at):
                    self.resource_version = self._list()
                    listed_at = time.monotonic()
                self._watch(self._watch_timeout(listed_at))
            except Gone:
                log.info("%s: resourceVersion %s expired; listing again", self.name, self.resource_version)
                self.resource_version = None
            except NotFound:
                self._replace([])  # the kind is not installed (yet): an empty cache is the truth
                self.resource_version = None
                self._stop.wait(self._retry)
            except KubeError as exc:
                # The watch resumes from the last version seen; a failed list starts over.
                log.warning("%s: %s", self.name, exc)
                self._stop.wait(self._retry)
            except Exception:  # the edge of the informer's thread (a failing transform): log, list again
                log.exception("%s: informer loop failed", self.name)
                self.resource_version = None
                self._stop.wait(self._retry)

    def _resync_due(self, listed_at: float) -> bool:
        return self._resync is not None and time.monotonic() - listed_at >= self._resync

    def _watch_timeout(self, listed_at: float) -> int:
        if self._resync is None:
            return self._watch_seconds
        left = self._resync - (time.monotonic() - listed_at)
        return max(1, min(self._watch_seconds, int(left) + 1))

    def _list(self) -> str:
        listing = self.kube.listing(self.resource, self._namespace, **self._selectors)
        self.lists += 1
        self._replace(listing.items)
        return listing.resource_version

    def _replace(self, items: list[Obj]) -> None:
        fresh = {key_of(o): o for o in map(self._shrink, items)}
        with self._lock:
            old, self._items = self._items, dict(fresh)
        changes = [Change(ChangeType.LISTED, obj, old.get(k)) for k, obj in fresh.items()]
        changes += [Change(ChangeType.DELETED, obj, obj) for k, obj in old.items() if k not in fresh]
        self._synced.set()
        for change in changes:
            self._deliver(change)

    def _watch(self, timeout: int) -> None:
        assert self.resource_version is not None
        stream = self.kube.watch(self.resource, self._namespace, resource_version=self.resource_version,
                                 timeout_seconds=timeout, **self._selectors)
        self._stream = stream
        try:
            if self._stop.is_set():
                return  # stopped while the watch was being opened
            for event in stream:
                self._apply(event)
                if self._stop.is_set():
                    return
        finally:
            self._stream = None
            stream.close()

    def _apply(self, event: WatchEvent) -> None:
        version = event.resource_version
        if event.type == "BOOKMARK":
            self.resource_version = version or self.resource_version
            return
        obj = self._shrink(event.object)
        key = key_of(obj)
        with self._lock:
            old = self._items.pop(key, None) if event.type == "DELETED" else self._items.get(key)
            if event.type != "DELETED":
                self._items[key] = obj
        self.resource_version = version or self.resource_version
        self._deliver(Change(ChangeType(event.type), obj, old))

    def _shrink(self, obj: Obj) -> Obj:
        return self._transform(obj) if self._transform else obj

    def _deliver(self, change: Change) -> None:
        for handler in self._handlers:
            try:
                handler(change)
            except Exception:  # the edge of a handler: one bad handler must not stop the cache
                log.exception("%s: handler failed on %s %s", self.name, change.type.value, key_of(change.obj))


class Informers:
    """Several informers run as one: started, stopped and synced together."""

    def __init__(self, *informers: Informer) -> None:
        self.all = informers

    def start(self) -> None:
        for informer in self.all:
            informer.start()

    def stop(self) -> None:
        for informer in self.all:
            informer.stop()

    @property
    def synced(self) -> bool:
        return all(i.synced for i in self.all)

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(i.wait_synced(max(0.0, deadline - time.monotonic())) for i in self.all)
