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

from kube import AlreadyExists, Conflict, Kube, KubeError, NotFound, Obj, clock
from kube.resources import LEASES

log = logging.getLogger(__name__)

LEASE_NAME = "multinet-controller"
LEASE_NAMESPACE = "kube-system"


class LeaderLease:
    def __init__(self, kube: Kube, duration: int = 15, on_lost: Callable[[], None] | None = None) -> None:
        self.kube = kube
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

    def _read(self) -> Obj:
        return self.kube.get(LEASES, LEASE_NAME, LEASE_NAMESPACE)

    def _replace(self, lease: Obj) -> None:
        self.kube.replace(LEASES, LEASE_NAME, lease, LEASE_NAMESPACE)

    def _try(self) -> bool:
        stamp = clock.now_rfc3339_micro()
        spec = {"holderIdentity": self.identity, "leaseDurationSeconds": self.duration,
                "acquireTime": stamp, "renewTime": stamp}
        try:
            lease = self._read()
        except NotFound:
            try:
                self.kube.create(LEASES, {"apiVersion": LEASES.api_version, "kind": LEASES.kind,
                                          "metadata": {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE},
                                          "spec": spec}, LEASE_NAMESPACE)
                return True
            except AlreadyExists:
                return False
        if self._held_by_another(lease.get("spec") or {}):
            return False
        lease["spec"] = spec
        try:
            self._replace(lease)  # the read's resourceVersion: a racing replica gets Conflict
            return True
        except Conflict:
            return False

    def _held_by_another(self, held: Obj) -> bool:
        holder, renewed = held.get("holderIdentity"), held.get("renewTime")
        if not holder or holder == self.identity or renewed is None:
            return False
        expires = clock.parse(renewed) + datetime.timedelta(seconds=held.get("leaseDurationSeconds") or self.duration)
        return expires > clock.now()

    def _renew(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.wait(self.duration / 3):
            try:
                lease = self._read()
                spec = lease.setdefault("spec", {})
                if spec.get("holderIdentity") != self.identity:
                    log.error("leader lease taken by %s", spec.get("holderIdentity"))
                    self.on_lost()
                    return
                spec["renewTime"] = clock.now_rfc3339_micro()
                self._replace(lease)
                last_ok = time.monotonic()
            except KubeError as exc:
                log.warning("renewing the leader lease failed: %s", exc)
                if time.monotonic() - last_ok > self.duration:
                    log.error("leader lease not renewed for %ss; exiting", self.duration)
                    self.on_lost()
                    return

    def release(self) -> None:
        """Hand the lease over at once on a clean stop (a killed replica's lease just expires)."""
        self._stop.set()
        try:
            lease = self._read()
            spec = lease.setdefault("spec", {})
            if spec.get("holderIdentity") == self.identity:
                spec.pop("holderIdentity", None)
                spec.pop("renewTime", None)
                self._replace(lease)
        except KubeError as exc:
            log.warning("releasing the leader lease failed: %s", exc)
