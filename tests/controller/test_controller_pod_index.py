"""The in-use index against the real apiserver: only the pod watch says a pod exists.

The pod reconciler reads a pod (from the informer's cache), then works on it; a pod deleted in between is
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
from controller.pods import CachedPod, PodReconciler
from controller.workqueue import WorkQueue
from kube import Change, EventWriter, Informer, Kube, Obj
from kube.resources import PODS
from podnetwork import names
from tests.controller import controller_support
from tests.controller.controller_support import pod_manifest, suffix
from tests.support.wait import wait_for

pytestmark = pytest.mark.cluster


def deleted_after_read(kube: Kube, index: Index) -> CachedPod:
    """The reconciler's pod lookup, returning the pod as read after it was force-deleted
    and the watch told the index so: the race of a worker with a
    `kubectl delete --grace-period=0`."""

    def lookup(namespace: str, name: str) -> Obj | None:
        obj = kube.find(PODS, name, namespace)
        if obj is not None:
            kube.delete(PODS, name, namespace, grace_period_seconds=0)
            wait_for("the watch to drop the pod", lambda: index.pod((namespace, name)) is None, 30)
        return obj

    return lookup


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

    reconciler = PodReconciler(kube, index, Allocator(kube), EventWriter(kube, "test"),
                               deleted_after_read(kube, index))
    with contextlib.suppress(TemporaryError):  # the network does not exist: the pod would wait
        reconciler.reconcile(namespace, "racer")
    assert kube.get_pod(namespace, "racer") is None
    assert index.pod((namespace, "racer")) is None
    assert index.network_in_use(network, time.monotonic()) == []


def test_a_pod_replaced_under_the_same_name_keeps_its_gate(
    kube: controller_support.Kube, namespace: str, fed_index: tuple[Index, FanOut],
) -> None:
    """The reconciler works from the informer's copy, which can be of a pod since deleted
    and created again under its name, with the same gate and networks: the patch that
    lifts the gate must not land on the new pod (its addresses were claimed for the old)."""
    index, _ = fed_index
    network = f"plain-{suffix()}"
    # An address-less network, Ready: the reconciler gets as far as lifting the gate.
    index.put("network", network, {"metadata": {"name": network, "annotations": {names.NETWORK_ID_ANNOTATION: "7"}},
                                   "spec": {"provider": names.PROVIDER},
                                   "status": {"conditions": [{"type": names.CONDITION_READY, "status": "True"}]}})
    body = pod_manifest("twin", [{"podNetworkName": network}], {})
    body["spec"]["schedulingGates"] = [{"name": names.SCHEDULING_GATE}]
    wait_for("the default service account", lambda: kube.core.list_namespaced_service_account(
        namespace, field_selector="metadata.name=default").items, 30)
    kube.core.create_namespaced_pod(namespace, body)  # type: ignore[arg-type]  # kubernetes-stubs: a plain dict body
    first = kube.find(PODS, "twin", namespace)
    assert first is not None
    stale = slim_pod(first)
    kube.delete(PODS, "twin", namespace, grace_period_seconds=0)
    wait_for("the first pod to go", lambda: kube.find(PODS, "twin", namespace) is None, 30)
    kube.core.create_namespaced_pod(namespace, body)  # type: ignore[arg-type]  # kubernetes-stubs: a plain dict body

    reconciler = PodReconciler(kube, index, Allocator(kube), EventWriter(kube, "test"), lambda ns, name: stale)
    with pytest.raises(TemporaryError, match="pod changed while lifting the gate"):
        reconciler.reconcile(namespace, "twin")
    second = kube.find(PODS, "twin", namespace)
    assert second is not None and second["metadata"]["uid"] != stale["metadata"]["uid"]
    assert [g["name"] for g in second["spec"]["schedulingGates"]] == [names.SCHEDULING_GATE]
    assert names.ALLOCATIONS_ANNOTATION not in (second["metadata"].get("annotations") or {})
