"""One active replica: a coordination.k8s.io Lease, held while the controller runs.

A replica that does not hold the lease waits before it indexes, allocates or
serves admission. The holder renews every third of the lease duration; if it
cannot renew for a whole duration it exits (crash-only: a stale leader must not
keep allocating), and a waiting replica takes over once the lease expires.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from kubernetes import client

from controller.kube import Kube, is_status

log = logging.getLogger(__name__)

LEASE_NAME = "multinet-controller"
LEASE_NAMESPACE = "kube-system"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class LeaderLease:
    def __init__(self, kube: Kube, duration: int = 15, on_lost: Callable[[], None] | None = None) -> None:
        self.api = client.CoordinationV1Api(kube.api)
        self.duration = duration
        self.identity = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.on_lost = on_lost or (lambda: os._exit(3))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, timeout: float | None = None) -> None:
        """Block until this replica holds the lease, then keep renewing it in the background."""
        deadline = None if timeout is None else time.monotonic() + timeout
        waited = False
        while not self._try():
            if not waited:
                log.info("another replica holds lease %s/%s; waiting", LEASE_NAMESPACE, LEASE_NAME)
                waited = True
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("could not acquire the leader lease")
            time.sleep(1.0)
        log.info("acquired leader lease as %s", self.identity)
        self._thread = threading.Thread(target=self._renew, name="leader-lease", daemon=True)
        self._thread.start()

    def _try(self) -> bool:
        now = _now()
        spec = client.V1LeaseSpec(holder_identity=self.identity, lease_duration_seconds=self.duration,
                                  acquire_time=now, renew_time=now)
        try:
            lease = self.api.read_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            try:
                self.api.create_namespaced_lease(LEASE_NAMESPACE, client.V1Lease(
                    metadata=client.V1ObjectMeta(name=LEASE_NAME, namespace=LEASE_NAMESPACE), spec=spec))
                return True
            except client.ApiException as exc2:
                if is_status(exc2, 409):
                    return False
                raise
        held = lease.spec
        if held.holder_identity and held.holder_identity != self.identity and held.renew_time is not None:
            expires = held.renew_time + datetime.timedelta(seconds=held.lease_duration_seconds or self.duration)
            if expires > now:
                return False
        lease.spec = spec
        try:
            self.api.replace_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE, lease)
            return True
        except client.ApiException as exc:
            if is_status(exc, 409):
                return False
            raise

    def _renew(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.wait(self.duration / 3):
            try:
                lease = self.api.read_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE)
                if lease.spec.holder_identity != self.identity:
                    log.error("leader lease taken by %s", lease.spec.holder_identity)
                    self.on_lost()
                    return
                lease.spec.renew_time = _now()
                self.api.replace_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE, lease)
                last_ok = time.monotonic()
            except client.ApiException as exc:
                log.warning("renewing the leader lease failed: %s", exc.reason)
                if time.monotonic() - last_ok > self.duration:
                    log.error("leader lease not renewed for %ss; exiting", self.duration)
                    self.on_lost()
                    return

    def release(self) -> None:
        """Hand the lease over at once on a clean stop (a killed replica's lease just expires)."""
        self._stop.set()
        try:
            lease = self.api.read_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE)
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                self.api.replace_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE, lease)
        except client.ApiException as exc:
            log.warning("releasing the leader lease failed: %s", exc.reason)
