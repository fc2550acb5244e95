"""The in-use index against the real apiserver: only the pod watch says a pod exists.

The pod reconciler reads a pod, then works on it; a pod deleted in between is
gone for good (no watch event will name it again), so what the reconciler read
must not put it back into the index, where it would hold its networks in use
for as long as the controller runs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from controller import keys
from controller.allocator import Allocator
from controller.errors import TemporaryError
from controller.fanout import FanOut
from controller.index import Index, slim_pod
from controller.networks import NetworkReconciler
from controller.pods import PodReconciler
from controller.workqueue import WorkQueue
from kube import Change, EventWriter, Informer, Kube, Obj, Resource
from kube.resources import PODS
from podnetwork import names
from tests.controller import controller_support
from tests.controller.controller_support import pod_manifest, suffix
from tests.support.wait import wait_for

pytestmark = pytest.mark.cluster


class DeletedAfterRead(Kube):
    """Each pod GET returns the pod as read, after it was force-deleted and the watch
    told the index so: the race of a worker with a `kubectl delete --grace-period=0`."""

    def __init__(self, kube: Kube, index: Index) -> None:
        super().__init__(kube.api)
        self.index = index

    def find(self, resource: Resource, name: str, namespace: str | None = None) -> Obj | None:
        obj = super().find(resource, name, namespace)
        if resource is PODS and obj is not None:
            self.delete(PODS, name, namespace, grace_period_seconds=0)
            wait_for("the watch to drop the pod", lambda: self.index.pod((namespace or "", name)) is None, 30)
        return obj


@pytest.fixture
def fed_index(kube: controller_support.Kube, namespace: str) -> Iterator[tuple[Index, FanOut]]:
    """An index fed by a real pod informer, as the controller's is."""
    index, queue = Index(), WorkQueue[keys.WorkKey]()
    fanout = FanOut(index, queue, Allocator(kube), NetworkReconciler(kube, index, queue.add))
    informer = Informer(kube, PODS, namespace=namespace, transform=slim_pod)

    def deliver(change: Change) -> None:
        fanout.on_pod(change.obj, change.deleted)

    informer.add_handler(deliver)
    informer.start()
    try:
        assert informer.wait_synced(30)
        yield index, fanout
    finally:
        informer.stop()


def test_pod_deleted_while_reconciled_stays_out_of_the_index(
    kube: controller_support.Kube, namespace: str, fed_index: tuple[Index, FanOut],
) -> None:
    index, _ = fed_index
    network = f"blue-{suffix()}"
    body = pod_manifest("racer", [{"podNetworkName": network}], {})
    body["spec"]["schedulingGates"] = [{"name": names.SCHEDULING_GATE}]
    # A pod is refused until the controller-manager has made the namespace's service account.
    wait_for("the default service account", lambda: kube.core.list_namespaced_service_account(
        namespace, field_selector="metadata.name=default").items, 30)
    kube.core.create_namespaced_pod(namespace, body)  # type: ignore[arg-type]  # kubernetes-stubs: a plain dict body
    wait_for("the watch to deliver the pod", lambda: index.pod((namespace, "racer")), 30)
    assert index.network_in_use(network, time.monotonic()) == [f"pod {namespace}/racer"]

    racing = DeletedAfterRead(kube, index)
    reconciler = PodReconciler(racing, index, Allocator(racing), EventWriter(racing, "test"))
    with contextlib.suppress(TemporaryError):  # the network does not exist: the pod would wait
        reconciler.reconcile(namespace, "racer")
    assert kube.get_pod(namespace, "racer") is None
    assert index.pod((namespace, "racer")) is None
    assert index.network_in_use(network, time.monotonic()) == []
