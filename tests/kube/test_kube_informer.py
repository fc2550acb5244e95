"""The informer against the real apiserver: list, watch, relist after 410 Gone, stop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kube import Change, ChangeType, Informer, Kube, Resource, Watch
from tests.kube.conftest import widget

pytestmark = pytest.mark.cluster


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := probe():
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[ChangeType, str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, change: Change) -> None:
        with self._lock:
            self.changes.append((change.type, change.obj["metadata"]["name"],
                                 (change.old or {}).get("spec")))

    def of(self, name: str) -> list[ChangeType]:
        with self._lock:
            return [t for t, n, _ in self.changes if n == name]


@pytest.fixture
def running() -> Iterator[list[Informer]]:
    made: list[Informer] = []
    yield made
    for informer in made:
        informer.stop()


def start(running: list[Informer], informer: Informer, recorder: Recorder) -> Informer:
    informer.add_handler(recorder)
    informer.start()
    running.append(informer)
    assert informer.wait_synced(30)
    return informer


def test_sees_create_update_delete(kube: Kube, namespace: str, widgets: Resource,
                                   running: list[Informer]) -> None:
    kube.create(widgets, widget(widgets, "before", size=1), namespace)
    seen = Recorder()
    informer = start(running, Informer(kube, widgets, namespace=namespace), seen)
    assert seen.of("before") == [ChangeType.LISTED]
    assert (informer.get(namespace, "before") or {}).get("spec") == {"size": 1}

    kube.create(widgets, widget(widgets, "w", size=1), namespace)
    wait_for("ADDED", lambda: seen.of("w") == [ChangeType.ADDED])
    kube.patch(widgets, "w", {"spec": {"size": 2}}, namespace)
    wait_for("MODIFIED", lambda: seen.of("w") == [ChangeType.ADDED, ChangeType.MODIFIED])
    assert (informer.get(namespace, "w") or {}).get("spec") == {"size": 2}
    assert seen.changes[-1][2] == {"size": 1}  # the handler is told the state before
    kube.delete(widgets, "w", namespace)
    wait_for("DELETED", lambda: seen.of("w")[-1:] == [ChangeType.DELETED])
    assert informer.get(namespace, "w") is None
    assert [o["metadata"]["name"] for o in informer.items()] == ["before"]
    assert informer.lists == 1  # a watch, not a listing per change


class ExpiringKube(Kube):
    """The real client, whose first watch asks for a version long expired (as after a
    long disconnect) once `meanwhile` has changed things the informer cannot see."""

    def __init__(self, real: Kube, meanwhile: Callable[[], None]) -> None:
        super().__init__(real.api)
        self.meanwhile: Callable[[], None] | None = meanwhile
        self.watched_from: list[str] = []

    def watch(self, resource: Resource, namespace: str | None = None, *, resource_version: str,
              **kwargs: Any) -> Watch:
        if self.meanwhile is not None:
            self.meanwhile()
            self.meanwhile = None
            resource_version = "1"
        self.watched_from.append(resource_version)
        return super().watch(resource, namespace, resource_version=resource_version, **kwargs)


def test_relists_after_gone_and_reports_what_vanished(kube: Kube, namespace: str, widgets: Resource,
                                                      running: list[Informer],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    kube.create(widgets, widget(widgets, "old"), namespace)

    def meanwhile() -> None:
        kube.delete(widgets, "old", namespace)
        kube.create(widgets, widget(widgets, "new"), namespace)

    expiring = ExpiringKube(kube, meanwhile)
    seen = Recorder()
    informer = start(running, Informer(expiring, widgets, namespace=namespace, retry_seconds=0.1), seen)
    # The apiserver answers the expired version with 410 Gone; the informer lists again.
    caplog.set_level(logging.INFO, logger="kube.informer")
    wait_for("the relist", lambda: informer.lists == 2)
    assert any("expired; listing again" in r.getMessage() for r in caplog.records), caplog.text
    wait_for("the vanished object reported", lambda: seen.of("old") == [ChangeType.LISTED, ChangeType.DELETED])
    assert seen.of("new") == [ChangeType.LISTED]
    assert informer.get(namespace, "old") is None and informer.get(namespace, "new") is not None
    assert expiring.watched_from[0] == "1"
    # After the relist it watches on from the new listing: later changes still arrive.
    kube.patch(widgets, "new", {"spec": {"size": 3}}, namespace)
    wait_for("MODIFIED after relist", lambda: seen.of("new")[-1:] == [ChangeType.MODIFIED])


def test_a_watch_the_server_ends_resumes_without_a_listing(kube: Kube, namespace: str, widgets: Resource,
                                                            running: list[Informer]) -> None:
    seen = Recorder()
    informer = start(running, Informer(kube, widgets, namespace=namespace, watch_seconds=1), seen)
    for i in range(3):
        time.sleep(1.5)  # longer than the server keeps each watch open
        kube.create(widgets, widget(widgets, f"w{i}"), namespace)
        wait_for(f"w{i} ADDED", lambda: seen.of(f"w{i}") == [ChangeType.ADDED])
    assert informer.lists == 1


def test_resync_relists_periodically(kube: Kube, namespace: str, widgets: Resource,
                                     running: list[Informer]) -> None:
    kube.create(widgets, widget(widgets, "w"), namespace)
    seen = Recorder()
    informer = start(running, Informer(kube, widgets, namespace=namespace, resync_seconds=1), seen)
    wait_for("a second listing", lambda: informer.lists >= 2)
    assert seen.of("w")[:2] == [ChangeType.LISTED, ChangeType.LISTED]


def test_field_selector_narrows_what_is_cached(kube: Kube, namespace: str, widgets: Resource,
                                              running: list[Informer]) -> None:
    for name in ("mine", "other"):
        kube.create(widgets, widget(widgets, name), namespace)
    seen = Recorder()
    informer = start(running, Informer(kube, widgets, namespace=namespace, field_selector="metadata.name=mine"),
                     seen)
    kube.patch(widgets, "other", {"spec": {"size": 9}}, namespace)
    kube.patch(widgets, "mine", {"spec": {"size": 9}}, namespace)
    wait_for("mine modified", lambda: ChangeType.MODIFIED in seen.of("mine"))
    assert [o["metadata"]["name"] for o in informer.items()] == ["mine"] and seen.of("other") == []


def test_transform_shrinks_what_is_stored(kube: Kube, namespace: str, widgets: Resource,
                                          running: list[Informer]) -> None:
    kube.create(widgets, widget(widgets, "w", big="x" * 1000), namespace)
    informer = start(running, Informer(kube, widgets, namespace=namespace, transform=lambda o: {
        "metadata": {k: o["metadata"][k] for k in ("name", "namespace")}}), Recorder())
    assert informer.get(namespace, "w") == {"metadata": {"name": "w", "namespace": namespace}}


def test_kind_not_installed_is_an_empty_synced_cache(kube: Kube, running: list[Informer]) -> None:
    missing = Resource("absent.kube-test.multinet.io", "v1", "nothings", namespaced=False)
    informer = start(running, Informer(kube, missing, retry_seconds=0.1), Recorder())
    assert informer.synced and informer.items() == []


def test_stop_ends_a_blocked_watch(kube: Kube, namespace: str, widgets: Resource) -> None:
    informer = Informer(kube, widgets, namespace=namespace)
    informer.start()
    assert informer.wait_synced(30)
    wait_for("the watch to be open", lambda: informer.watching)
    informer.stop(timeout=10)
    assert not informer.running
