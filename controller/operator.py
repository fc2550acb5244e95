"""The controller process: informers feed the index and a work queue (fan-out); worker
threads reconcile; kopf serves the admission webhooks.

Handlers never call the apiserver themselves (except admission, which must
answer inline): they record what they saw and mark keys dirty. Workers take
one key at a time and converge it from the full current state.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller import keys, metrics
from controller.access import AccessCache
from controller.allocator import Allocator
from controller.certs import ServingCert, serving_cert, shared_cert
from controller.fanout import FanOut
from controller.index import Index, slim_pod
from controller.install import install_crds
from controller.kopf_wiring import WEBHOOK_HOST, Health, build_registry, run_kopf
from controller.leader import LeaderLease
from controller.leader_pod import LeaderPod
from controller.networks import NetworkReconciler
from controller.notices import Notices
from controller.pods import PodReconciler
from controller.policies import PolicyReconciler
from kube.kinds import NETWORK_PARAMS, POD_NETWORK_ATTACHMENTS, POD_NETWORKS
from controller.services import ServiceReconciler
from controller.workers import Reconcilers, Workers
from controller.workqueue import WorkQueue
from kube import Change, Conflict, EventWriter, Informer, Kube, KubeError, NotFound, Obj, Resource
from kube.resources import NETWORK_POLICIES, PODS, SERVICES
from podnetwork import names
from podnetwork.networks import NetworksError, pod_networks

log = logging.getLogger(__name__)

ADMIT_HOLD = 30.0  # seconds an admitted pod keeps its networks in use before its watch event
WATCH_SECONDS = 300
INFORMER_SYNC_TIMEOUT = 120.0


@dataclass(frozen=True)
class Options:
    kubeconfig: str | None
    workers: int = 16
    webhook_port: int = 0  # 0: pick a free port
    resync_seconds: float = 30.0
    sweep_seconds: float = 60.0
    cert_dir: str | None = None
    webhook_address: str = WEBHOOK_HOST  # where the webhook server (and /healthz) listens
    webhook_service: tuple[str, str] | None = None  # (namespace, name): register the webhooks through it
    cert_secret: tuple[str, str] | None = None  # (namespace, name): the serving certificate all replicas share
    health_port: int = 0  # 0: no /healthz
    pod: tuple[str, str] | None = None  # (namespace, name): this replica's pod, labelled while it leads
    metrics_port: int | None = None  # None: no /metrics


class Controller:
    """The reconcilers, their shared index and queue, the informers and the worker threads."""

    def __init__(self, kube: Kube, options: Options) -> None:
        self.kube = kube
        self.options = options
        self.index = Index()
        self.queue: WorkQueue[keys.WorkKey] = WorkQueue()
        self.allocator = Allocator(kube)
        self.networks = NetworkReconciler(kube, self.index, self.queue.add)
        self.pods = PodReconciler(kube, self.index, self.allocator, EventWriter(kube, "multinet-controller"),
                                  self._cached_pod)
        notices = Notices(EventWriter(kube, "multinet-controller"))
        self.services = ServiceReconciler(kube, self.index, self.allocator, notices)
        self.policies = PolicyReconciler(kube, self.index, notices)
        self.fanout = FanOut(self.index, self.queue, self.allocator, self.networks)
        self.workers = Workers(kube, self.queue, Reconcilers(self.allocator, self.networks, self.pods,
                                                             self.services, self.policies))
        self.access = AccessCache(kube)
        self.informers: list[Informer] = []
        self._pod_informer: Informer | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- start-up -----------------------------------------------------------------------

    def prime(self) -> None:
        """Start the informers one kind after another, each synced before the next, so the
        index holds every object before any worker runs: a pod is never told its network
        is missing only because the watch had not caught up."""
        fan = self.fanout
        for resource, handler, transform in (
            (NETWORK_PARAMS, fan.on_params, None),
            (POD_NETWORKS, fan.on_network, None),
            (POD_NETWORK_ATTACHMENTS, fan.on_attachment, None),
            (SERVICES, fan.on_service, None),
            (NETWORK_POLICIES, fan.on_policy, None),
            (PODS, fan.on_pod, slim_pod),
        ):
            self._inform(resource, handler, transform)
        self.queue.add(keys.Network(names.DEFAULT_NETWORK))
        log.info("loaded %d address claims", self.allocator.load())

    def _inform(self, resource: Resource, handler: Callable[[Obj, bool], None],
                transform: Callable[[Obj], Obj] | None) -> None:
        informer = Informer(self.kube, resource, transform=transform, watch_seconds=WATCH_SECONDS)

        def deliver(change: Change) -> None:
            handler(change.obj, change.deleted)

        informer.add_handler(deliver)
        informer.start()
        self.informers.append(informer)
        if resource is PODS:
            self._pod_informer = informer
        if not informer.wait_synced(INFORMER_SYNC_TIMEOUT):
            raise TimeoutError(f"could not list {resource} within {INFORMER_SYNC_TIMEOUT}s")

    def _cached_pod(self, namespace: str, name: str) -> Obj | None:
        return self._pod_informer.get(namespace, name) if self._pod_informer else None

    def start(self) -> None:
        """Start the workers (once; a webhook server restart calls this again)."""
        if self._threads:
            return
        for i in range(self.options.workers):
            self._spawn(self.workers.work, f"worker-{i}")
        self._spawn(lambda: self.workers.resync(self._stop, self.fanout.everything, self.options.resync_seconds,
                                                self.options.sweep_seconds), "resync")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self.queue.close()
        for informer in self.informers:
            informer.stop(timeout=2.0)

    # --- admission (answered inline) ----------------------------------------------------

    def hold_references(self, pod: Obj) -> None:
        """KEP "InUse": a pod just admitted keeps what it references in use at once.

        The in-use finalizer otherwise waits for the pod's watch event, and a deletion
        of the network sent right after the pod's creation would slip through.
        """
        meta = pod.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        if not name:
            return
        try:
            networks = pod_networks(meta.get("annotations"), bool((pod.get("spec") or {}).get("hostNetwork")))
        except NetworksError:
            return
        refs: list[tuple[str, Any]] = [
            ("network", n.pod_network_name) if n.pod_network_name
            else ("attachment", (namespace, n.pod_network_attachment_name))
            for n in networks if not n.is_default]
        self.index.admit((namespace, name), refs, time.monotonic() + ADMIT_HOLD)
        for kind, key in refs:
            self._hold(kind, key)

    def _hold(self, kind: str, key: Any) -> None:
        obj = self.index.get(kind, key)
        if obj is None:
            return  # missing: the pod waits for it (active validation), nothing to hold yet
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if names.FINALIZER in finalizers or meta.get("deletionTimestamp"):
            return
        patch = {"metadata": {"finalizers": [*finalizers, names.FINALIZER],
                              "resourceVersion": meta["resourceVersion"]}}
        work: keys.Network | keys.Attachment
        if kind == "attachment":
            work = keys.Attachment(*key)
            resource, namespace = POD_NETWORK_ATTACHMENTS, work.namespace
        else:
            work = keys.Network(key)
            resource, namespace = POD_NETWORKS, None
        try:
            self.kube.patch(resource, work.name, patch, namespace)
        except (NotFound, Conflict):
            self.queue.add(work)  # changed or gone meanwhile: the reconciler converges it
        except KubeError as exc:  # admission never fails over this: the reconciler converges it
            log.warning("could not hold %s %s in use: %s", kind, key, exc)
            self.queue.add(work)

    def attachment_network(self, namespace: str, name: str) -> str | None:
        """The PodNetwork a PodNetworkAttachment points at, from the watch cache."""
        return self.index.attachment_network((namespace, name))


def webhook_cert(kube: Kube, options: Options, cert_dir: Path) -> ServingCert:
    """The serving certificate, for the Service's DNS name when there is one."""
    hosts = [WEBHOOK_HOST]
    if options.webhook_address not in (WEBHOOK_HOST, "0.0.0.0", "::"):
        hosts.append(options.webhook_address)
    if options.webhook_service is not None:
        namespace, name = options.webhook_service
        hosts += [f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]
    if options.cert_secret is not None:
        return shared_cert(kube, options.cert_secret, cert_dir, *hosts)
    return serving_cert(cert_dir, *hosts)


def run(options: Options) -> int:
    """Entry point of `multinet controller`: wiring only."""
    # A kubeconfig when given; in a pod its service account; else $KUBECONFIG or ~/.kube/config.
    in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    kube = Kube.connect(options.kubeconfig) if options.kubeconfig or in_pod else Kube.from_kubeconfig(None)
    # Step 0: /healthz answers from the start (a standby waits for the lease below for ever).
    health = Health(options.webhook_address, options.health_port) if options.health_port else None
    if health is not None:
        health.serve()
    # Step 1: the API must exist before anything watches it.
    install_crds(kube)
    if options.metrics_port is not None:
        metrics.serve("0.0.0.0", options.metrics_port)
        log.info("metrics on http://0.0.0.0:%d/metrics", options.metrics_port)
    # Step 2: only one replica is active; the others wait here. Admission too: the CREATE
    # validation holds a pod's networks in use in this process's index until the pod's
    # watch event, and a standby's hold would be unknown to the leader's reconcilers.
    lease = LeaderLease(kube)
    # The webhook Service selects the leader's pod by a label; a restarted replica's pod keeps it.
    leader_pod = LeaderPod(kube, options.pod) if options.pod else None
    if leader_pod is not None:
        leader_pod.clear()
    lease.acquire()
    # Step 3: index every object and every address claim before a worker starts.
    ctl = Controller(kube, options)
    ctl.prime()
    if options.metrics_port is not None:
        metrics.watch_ipam(ctl.index, ctl.allocator)
    # Step 4: TLS for the webhooks, made here (or shared through a Secret) so it works on any cluster.
    # Without --cert-dir the keys go in a directory of this run's own, removed at exit:
    # key material of a stopped controller must not pile up in the temporary directory.
    cert_dir = Path(options.cert_dir) if options.cert_dir else Path(tempfile.mkdtemp(prefix="multinet-webhook-"))
    cert = webhook_cert(kube, options, cert_dir)
    # Step 5: kopf serves admission and runs until signalled.
    try:
        run_kopf(build_registry(ctl, cert, health, on_serving=leader_pod.mark if leader_pod else None))
    finally:
        if leader_pod is not None:
            leader_pod.clear_quietly()
        lease.release()
        if health is not None:
            health.stop()
        if not options.cert_dir:
            shutil.rmtree(cert_dir, ignore_errors=True)
    return 0
