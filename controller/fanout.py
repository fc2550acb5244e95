"""Fan-out: what a watched change means for the work queue.

Informer handlers call these; they record what they saw in the index and mark
keys dirty, never calling the apiserver themselves. A worker later converges
each key from the full current state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from controller import keys
from controller.allocator import Allocator
from controller.endpoints import selects
from controller.index import Index, PodRecord, pod_record
from controller.networks import NetworkReconciler
from controller.workqueue import WorkQueue
from kube import Obj
from podnetwork import names


class FanOut:
    def __init__(self, index: Index, queue: WorkQueue[keys.WorkKey], allocator: Allocator,
                 networks: NetworkReconciler) -> None:
        self.index = index
        self.queue = queue
        self.allocator = allocator
        self.networks = networks

    def on_params(self, obj: Obj, deleted: bool) -> None:
        name = obj["metadata"]["name"]
        self.index.put("params", name, None if deleted else obj)
        self.queue.add(keys.Params(name))
        # Dependents read this object from the index: re-check them once the watch has
        # delivered its new state (a reconcile that ran earlier may have seen the old one).
        self.networks.notify_params_users(name)

    def on_network(self, obj: Obj, deleted: bool) -> None:
        name = obj["metadata"]["name"]
        self.index.put("network", name, None if deleted else obj)
        self.queue.add(keys.Network(name))
        self.networks.notify_dependents(name)

    def on_attachment(self, obj: Obj, deleted: bool) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        network = (obj.get("spec") or {}).get("podNetworkName")
        self.index.put("attachment", key, None if deleted else obj)
        self.index.set_attachment(key, None if deleted else network)
        self.queue.add(keys.Attachment(*key))
        if network:
            self.queue.add(keys.Network(network))  # its in-use state may have changed
        for pod in self.index.pods_of_attachment(key):
            if pod.gated:
                self.queue.add(keys.Pod(pod.namespace, pod.name))

    def on_pod(self, pod: Obj, deleted: bool) -> None:
        record = pod_record(pod)
        if deleted:
            old = self.index.remove_pod(record.key)
            self.queue.add(keys.Release(record.uid))
        else:
            old = self.index.set_pod(record)
            if record.gated or (record.terminal and self.allocator.held_by(record.uid)):
                self.queue.add(keys.Pod(record.namespace, record.name))
        self._touch_services(record, old)
        if deleted or old is None or old.networks != record.networks or old.terminal != record.terminal:
            self._touch_users(record)

    def on_service(self, svc: Obj, deleted: bool) -> None:
        meta = svc["metadata"]
        key = (meta["namespace"], meta["name"])
        annotated = names.POD_NETWORK_ANNOTATION in (meta.get("annotations") or {})
        known = self.index.get("service", key) is not None
        self.index.put("service", key, svc if annotated and not deleted else None)
        if annotated or known:
            self.queue.add(keys.Service(*key))

    def on_policy(self, policy: Obj, deleted: bool) -> None:
        meta = policy["metadata"]
        key = (meta["namespace"], meta["name"])
        annotated = names.POD_NETWORK_ANNOTATION in (meta.get("annotations") or {})
        # Only the key is kept: the reconciler reads the policy itself.
        self.index.put("policy", key, {"metadata": {"name": meta["name"]}} if annotated and not deleted else None)
        if annotated and not deleted:
            self.queue.add(keys.Policy(*key))

    def _touch_services(self, record: PodRecord, old: PodRecord | None) -> None:
        """Services on a secondary network selecting the pod (before or after) need new slices."""
        for ns, name in self.index.keys("service"):
            if ns != record.namespace:
                continue
            selector = ((self.index.get("service", (ns, name)) or {}).get("spec") or {}).get("selector")
            if selects(selector, dict(record.labels)) or (old is not None and selects(selector, dict(old.labels))):
                self.queue.add(keys.Service(ns, name))

    def _touch_users(self, record: PodRecord) -> None:
        """Re-check the in-use finalizer of what the pod references, when it might flip."""
        now = time.monotonic()
        for net in record.networks:
            key: keys.Network | keys.Attachment
            if net.pod_network_name:
                key = keys.Network(net.pod_network_name)
                obj = self.index.get("network", key.name)
                users = None if obj is None else self.index.network_in_use(key.name, now)
            else:
                key = keys.Attachment(record.namespace, net.pod_network_attachment_name)
                obj = self.index.get("attachment", (key.namespace, key.name))
                users = None if obj is None else self.index.attachment_in_use((key.namespace, key.name), now)
            if obj is None:
                continue
            meta = obj["metadata"]
            held = names.FINALIZER in (meta.get("finalizers") or [])
            if meta.get("deletionTimestamp") or held != bool(users):
                self.queue.add(key)

    def everything(self) -> Iterator[keys.WorkKey]:
        """Every key a periodic resync re-checks (repairs what a missed event left behind)."""
        for pod in self.index.gated_pods():
            yield keys.Pod(pod.namespace, pod.name)
        yield from map(keys.Network, self.index.keys("network"))
        yield from map(keys.Params, self.index.keys("params"))
        attachments: list[Any] = self.index.keys("attachment")
        yield from (keys.Attachment(ns, name) for ns, name in attachments)
        services: list[Any] = self.index.keys("service")
        yield from (keys.Service(ns, name) for ns, name in services)
        policies: list[Any] = self.index.keys("policy")
        yield from (keys.Policy(ns, name) for ns, name in policies)
        yield keys.Network(names.DEFAULT_NETWORK)
