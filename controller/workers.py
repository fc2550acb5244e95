"""The worker threads: take one typed key at a time, converge it, retry with backoff.

A key's type says which reconciler converges it. Besides the workers, one
thread re-queues everything periodically and sweeps addresses whose pod is gone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import assert_never

from controller import keys, metrics
from controller.allocator import Allocator
from controller.errors import PermanentError, TemporaryError
from controller.networks import NetworkReconciler
from controller.pods import PodReconciler
from controller.policies import PolicyReconciler
from controller.services import ServiceReconciler
from controller.workqueue import WorkQueue
from kube import Kube
from kube.resources import PODS, SERVICES
from podnetwork import names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reconcilers:
    allocator: Allocator
    networks: NetworkReconciler
    pods: PodReconciler
    services: ServiceReconciler
    policies: PolicyReconciler


class Workers:
    def __init__(self, kube: Kube, queue: WorkQueue[keys.WorkKey], reconcilers: Reconcilers) -> None:
        self.kube = kube
        self.queue = queue
        self.r = reconcilers
        self._failures: dict[keys.WorkKey, int] = {}
        self._failures_lock = threading.Lock()

    def dispatch(self, key: keys.WorkKey) -> None:
        match key:
            case keys.Pod(namespace, name):
                self.r.pods.reconcile(namespace, name)
            case keys.Release(uid):
                self.r.allocator.release(uid)
                self.r.pods.forget(uid)
            case keys.Network(name):
                self.r.networks.pod_network(name)
            case keys.Attachment(namespace, name):
                self.r.networks.attachment(namespace, name)
            case keys.Params(name):
                self.r.networks.params(name)
            case keys.Service(namespace, name):
                self.r.services.reconcile(namespace, name)
            case keys.Policy(namespace, name):
                self.r.policies.reconcile(namespace, name)
            case _:
                assert_never(key)

    def work(self) -> None:
        """One worker thread's loop, until the queue closes."""
        while (key := self.queue.get()) is not None:
            kind, result, start = type(key).__name__, "error", time.monotonic()
            try:
                self.dispatch(key)
                result = "ok"
                with self._failures_lock:
                    self._failures.pop(key, None)
            except TemporaryError as exc:
                result = "retry"
                log.debug("%s: %s", key, exc)
                self.queue.add_after(key, self._backoff(key, exc.delay))
            except PermanentError as exc:
                result = "failed"
                log.info("%s: %s", key, exc)
            except Exception:  # the edge of the worker: log it, retry with backoff, keep the thread
                log.exception("reconciling %s failed", key)
                self.queue.add_after(key, self._backoff(key, 1.0))
            finally:
                self.queue.done(key)
                metrics.SECONDS.labels(kind=kind).observe(time.monotonic() - start)
                metrics.RECONCILES.labels(kind=kind, result=result).inc()

    def _backoff(self, key: keys.WorkKey, base: float) -> float:
        with self._failures_lock:
            n = self._failures[key] = self._failures.get(key, 0) + 1
        return min(base * (1.5 ** min(n - 1, 10)), 60.0) if base >= 1.0 else min(base * n, 5.0)

    def resync(self, stop: threading.Event, everything: Callable[[], Iterable[keys.WorkKey]],
               resync_seconds: float, sweep_seconds: float) -> None:
        """Periodic full pass: repairs anything a missed event left behind."""
        last_sweep = time.monotonic()
        while not stop.wait(resync_seconds):
            for key in everything():
                self.queue.add(key)
            if time.monotonic() - last_sweep >= sweep_seconds:
                last_sweep = time.monotonic()
                self.sweep()

    def sweep(self) -> int:
        def live() -> set[str]:
            pods = {p["metadata"]["uid"] for p in self.kube.list(PODS)
                    if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")}
            # Services on a secondary network hold their VIP the same way.
            services = {s["metadata"]["uid"] for s in self.kube.list(SERVICES)
                        if names.POD_NETWORK_ANNOTATION in (s["metadata"].get("annotations") or {})}
            return pods | services
        try:
            freed = self.r.allocator.sweep(live)
        except Exception:  # the edge of the resync thread: the sweep runs again next period
            log.exception("allocation sweep failed")
            return 0
        if freed:
            log.info("sweep freed %d allocations of pods that are gone", freed)
        return freed
