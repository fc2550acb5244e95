"""The controller process: kopf watches feed the index and a work queue; worker
threads reconcile; kopf serves the admission webhooks.

Handlers never call the apiserver themselves (except admission, which must
answer inline): they record what they saw and mark keys dirty. Workers take
one key at a time and converge it from the full current state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from controller import admission, install
from controller.allocator import Allocator
from controller.certs import ServingCert, serving_cert
from controller.errors import PermanentError, TemporaryError
from controller.endpoints import selects
from controller.index import Index, PodRecord, pod_record
from controller.kube import Kube, Obj, is_status
from controller.leader import LeaderLease
from controller.networks import NetworkReconciler
from controller.pods import PodReconciler
from controller.services import ServiceReconciler
from controller.workqueue import WorkQueue
from podnetwork import names
from podnetwork.networks import NetworksError, pod_networks

log = logging.getLogger(__name__)

WEBHOOK_HOST = "127.0.0.1"
ALLOW_TTL = 10.0  # seconds an allowed `use` answer is reused
ADMIT_HOLD = 30.0  # seconds an admitted pod keeps its networks in use before its watch event


@dataclass(frozen=True)
class Options:
    kubeconfig: str | None
    workers: int = 16
    webhook_port: int = 0  # 0: pick a free port
    resync_seconds: float = 30.0
    sweep_seconds: float = 60.0
    cert_dir: str | None = None


class Controller:
    """The reconcilers, their shared index and queue, and the worker threads."""

    def __init__(self, kube: Kube, options: Options) -> None:
        self.kube = kube
        self.options = options
        self.index = Index()
        self.queue = WorkQueue()
        self.allocator = Allocator(kube)
        self.networks = NetworkReconciler(kube, self.index, self.queue.add)
        self.pods = PodReconciler(kube, self.index, self.allocator)
        self.services = ServiceReconciler(kube, self.index, self.allocator)
        self._failures: dict[Hashable, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._allowed: dict[tuple[str, str, str, str | None], float] = {}
        self._allow_lock = threading.Lock()

    # --- start-up -----------------------------------------------------------------------

    def prime(self) -> None:
        """Fill the index from a LIST of every object before any worker runs, so a pod is
        never told its network is missing only because the watch had not caught up."""
        for obj in self.kube.list_cluster(names.PARAMS_GROUP, names.PARAMS_PLURAL):
            self.on_object("params", obj, None)
        for obj in self.kube.list_cluster(names.GROUP, names.POD_NETWORK_PLURAL):
            self.on_object("network", obj, None)
        for obj in self.kube.list_cluster(names.GROUP, names.POD_NETWORK_ATTACHMENT_PLURAL):
            self.on_object("attachment", obj, None)
        for svc in self.kube.core.list_service_for_all_namespaces().items:
            self.on_service(self.kube.plain(svc), None)
        for pod in self.kube.list_pods():
            self.on_pod(pod, None)
        self.queue.add(("network", names.DEFAULT_NETWORK))
        log.info("loaded %d address claims", self.allocator.load())

    def start(self) -> None:
        """Start the workers (once; a webhook server restart calls this again)."""
        if self._threads:
            return
        for i in range(self.options.workers):
            self._spawn(self._work, f"worker-{i}")
        self._spawn(self._resync, "resync")

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self.queue.close()

    # --- watch events (kopf handlers call these; no I/O here) ---------------------------

    def on_object(self, kind: str, obj: Obj, event: str | None) -> None:
        meta = obj["metadata"]
        key: Any = (meta["namespace"], meta["name"]) if kind == "attachment" else meta["name"]
        gone = event == "DELETED"
        self.index.put(kind, key, None if gone else obj)
        if kind == "attachment":
            self.index.set_attachment(key, None if gone else (obj.get("spec") or {}).get("podNetworkName"))
            self.queue.add(("attachment", *key))
            network = (obj.get("spec") or {}).get("podNetworkName")
            if network:
                self.queue.add(("network", network))  # its in-use state may have changed
            for pod in self.index.pods_of_attachment(key):
                if pod.gated:
                    self.queue.add(("pod", pod.namespace, pod.name))
        else:
            self.queue.add((kind, key))
        # Dependents read this object from the index: re-check them once the watch has
        # delivered its new state (a reconcile that ran earlier may have seen the old one).
        if kind == "network":
            self.networks.notify_dependents(key)
        elif kind == "params":
            self.networks.notify_params_users(key)

    def on_pod(self, pod: Obj, event: str | None) -> None:
        record = pod_record(pod)
        if event == "DELETED":
            old = self.index.remove_pod(record.key)
            self.queue.add(("release", record.uid))
        else:
            old = self.index.set_pod(record)
            if record.gated or (record.terminal and self.allocator.held_by(record.uid)):
                self.queue.add(("pod", record.namespace, record.name))
        self._touch_services(record, old)
        changed = old is None or event == "DELETED" or old.networks != record.networks or old.terminal != record.terminal
        if changed:
            self._touch_users(record)

    def on_service(self, svc: Obj, event: str | None) -> None:
        meta = svc["metadata"]
        key = (meta["namespace"], meta["name"])
        annotated = names.POD_NETWORK_ANNOTATION in (meta.get("annotations") or {})
        known = self.index.get("service", key) is not None
        self.index.put("service", key, svc if annotated and event != "DELETED" else None)
        if annotated or known:
            self.queue.add(("service", *key))

    def _touch_services(self, record: PodRecord, old: PodRecord | None) -> None:
        """Services on a secondary network selecting the pod (before or after) need new slices."""
        for ns, name in self.index.keys("service"):
            if ns != record.namespace:
                continue
            selector = ((self.index.get("service", (ns, name)) or {}).get("spec") or {}).get("selector")
            if selects(selector, dict(record.labels)) or (old is not None and selects(selector, dict(old.labels))):
                self.queue.add(("service", ns, name))

    def _touch_users(self, record: Any) -> None:
        """Re-check the in-use finalizer of what the pod references, when it might flip."""
        for net in record.networks:
            if net.pod_network_name:
                obj, users = self.index.get("network", net.pod_network_name), None
                key: tuple[str, ...] = ("network", net.pod_network_name)
                if obj is not None:
                    users = self.index.network_in_use(net.pod_network_name, time.monotonic())
            else:
                ref = (record.namespace, net.pod_network_attachment_name)
                obj, users = self.index.get("attachment", ref), None
                key = ("attachment", *ref)
                if obj is not None:
                    users = self.index.attachment_in_use(ref, time.monotonic())
            if obj is None:
                continue
            meta = obj["metadata"]
            held = names.FINALIZER in (meta.get("finalizers") or [])
            if meta.get("deletionTimestamp") or held != bool(users):
                self.queue.add(key)

    # --- workers ------------------------------------------------------------------------

    def _work(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                self.dispatch(key)
                self._failures.pop(key, None)
            except TemporaryError as exc:
                log.debug("%s: %s", key, exc)
                self.queue.add_after(key, self._backoff(key, exc.delay))
            except PermanentError as exc:
                log.info("%s: %s", key, exc)
            except Exception:  # the edge of the worker: log it, retry with backoff, keep the thread
                log.exception("reconciling %s failed", key)
                self.queue.add_after(key, self._backoff(key, 1.0))
            finally:
                self.queue.done(key)

    def _backoff(self, key: Hashable, base: float) -> float:
        n = self._failures[key] = self._failures.get(key, 0) + 1
        return min(base * (1.5 ** min(n - 1, 10)), 60.0) if base >= 1.0 else min(base * n, 5.0)

    def dispatch(self, key: Hashable) -> None:
        assert isinstance(key, tuple)
        kind: str = key[0]
        rest: list[str] = list(key[1:])
        if kind == "pod":
            self.pods.reconcile(*rest)
        elif kind == "release":
            self.allocator.release(rest[0])
            self.pods.forget(rest[0])
        elif kind == "network":
            self.networks.pod_network(rest[0])
        elif kind == "attachment":
            self.networks.attachment(*rest)
        elif kind == "params":
            self.networks.params(rest[0])
        elif kind == "service":
            self.services.reconcile(*rest)

    def _resync(self) -> None:
        """Periodic full pass: repairs anything a missed event left behind."""
        last_sweep = time.monotonic()
        while not self._stop.wait(self.options.resync_seconds):
            for pod in self.index.gated_pods():
                self.queue.add(("pod", pod.namespace, pod.name))
            for kind in ("network", "params"):
                for key in self.index.keys(kind):
                    self.queue.add((kind, key))
            for ns, name in self.index.keys("attachment"):
                self.queue.add(("attachment", ns, name))
            for ns, name in self.index.keys("service"):
                self.queue.add(("service", ns, name))
            self.queue.add(("network", names.DEFAULT_NETWORK))
            if time.monotonic() - last_sweep >= self.options.sweep_seconds:
                last_sweep = time.monotonic()
                self.sweep()

    def sweep(self) -> int:
        def live() -> set[str]:
            pods = {p["metadata"]["uid"] for p in self.kube.list_pods()
                    if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")}
            # Services on a secondary network hold their VIP the same way.
            services = {s.metadata.uid for s in self.kube.core.list_service_for_all_namespaces().items
                        if names.POD_NETWORK_ANNOTATION in (s.metadata.annotations or {})}
            return pods | services
        try:
            freed = self.allocator.sweep(live)
        except Exception:  # the sweep runs again next period
            log.exception("allocation sweep failed")
            return 0
        if freed:
            log.info("sweep freed %d allocations of pods that are gone", freed)
        return freed

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
        try:
            if kind == "attachment":
                self.kube.patch_namespaced(names.GROUP, names.POD_NETWORK_ATTACHMENT_PLURAL, key[0], key[1], patch)
            else:
                self.kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, key, patch)
        except Exception as exc:  # admission never fails over this: the reconciler converges it
            if not is_status(exc, 404, 409):
                log.warning("could not hold %s %s in use: %s", kind, key, exc)
            self.queue.add((kind, *key) if kind == "attachment" else (kind, key))

    def attachment_network(self, namespace: str, name: str) -> str | None:
        """The PodNetwork a PodNetworkAttachment points at, from the watch cache."""
        return self.index.attachment_network((namespace, name))

    def may_use(self, user: Any, resource: str, name: str, namespace: str | None) -> tuple[bool, str]:
        """SubjectAccessReview, with allowed answers cached briefly (denials never are), as the
        apiserver's own webhook authorizer does: a revoked grant takes up to ALLOW_TTL to bite."""
        key = (json.dumps(dict(user), sort_keys=True), resource, name, namespace)
        now = time.monotonic()
        with self._allow_lock:
            if self._allowed.get(key, 0.0) > now:
                return True, ""
        allowed, reason = self.kube.may_use(dict(user), resource, name, namespace)
        if allowed:
            with self._allow_lock:
                if len(self._allowed) > 10_000:
                    self._allowed.clear()
                self._allowed[key] = now + ALLOW_TTL
        return allowed, reason


class RegisteringWebhookServer(kopf.WebhookServer):
    """kopf's server, which also registers our own webhook configurations once it listens
    (kopf's managed configurations cannot express matchConditions)."""

    def __init__(self, *, kube: Kube, cert: ServingCert, on_registered: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(certfile=str(cert.cert), pkeyfile=str(cert.key), cafile=str(cert.ca), **kwargs)
        self._kube = kube
        self._cert = cert
        self._on_registered = on_registered

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        async for client_config in super().__call__(fn):
            url = f"https://{WEBHOOK_HOST}:{self._port_of(client_config.get('url') or '')}"
            mutating, validating = admission.webhook_configurations(url, self._cert.ca_bundle())
            await asyncio.to_thread(install.apply_webhooks, self._kube, mutating, validating)
            self._on_registered()
            yield client_config

    @staticmethod
    def _port_of(url: str) -> int:
        return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind((WEBHOOK_HOST, 0))
        port: int = s.getsockname()[1]
        return port


def build_registry(ctl: Controller, cert: ServingCert) -> kopf.OperatorRegistry:
    """kopf handlers, in a fresh registry (no global state at import time)."""
    registry = kopf.OperatorRegistry()
    port = ctl.options.webhook_port or free_port()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # handlers do not log to k8s Events; we post our own
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # one line per pod event is noise
        settings.watching.server_timeout = 300
        settings.execution.max_workers = 16
        settings.admission.server = RegisteringWebhookServer(
            kube=ctl.kube, cert=cert, addr=WEBHOOK_HOST, host=WEBHOOK_HOST, port=port,
            # Workers start once admission answers at the registered address.
            on_registered=ctl.start)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # A fresh registry has none of kopf's default login handlers: hand kopf the
        # credentials our own client loaded from --kubeconfig.
        return connection_info(ctl.kube.api.configuration)

    @kopf.on.cleanup(registry=registry)
    def cleanup(**_: Any) -> None:
        ctl.stop()
        install.remove_webhooks(ctl.kube, admission.CONFIGURATION_NAME)

    def watch(kind: str, group: str, plural: str) -> None:
        @kopf.on.event(group, names.VERSION, plural, registry=registry, id=f"watch-{plural}")
        def handler(event: Any, body: Any, **_: Any) -> None:
            ctl.on_object(kind, _plain(body), event.get("type"))

    watch("network", names.GROUP, names.POD_NETWORK_PLURAL)
    watch("attachment", names.GROUP, names.POD_NETWORK_ATTACHMENT_PLURAL)
    watch("params", names.PARAMS_GROUP, names.PARAMS_PLURAL)

    @kopf.on.event("", "v1", "pods", registry=registry, id="watch-pods")
    def pod_event(event: Any, body: Any, **_: Any) -> None:
        ctl.on_pod(_plain(body), event.get("type"))

    @kopf.on.event("", "v1", "services", registry=registry, id="watch-services")
    def service_event(event: Any, body: Any, **_: Any) -> None:
        ctl.on_service(_plain(body), event.get("type"))

    @kopf.on.mutate("", "v1", "pods", id=admission.MUTATE_ID, operations=["CREATE"], registry=registry)
    def mutate_pod(body: Any, patch: Any, **_: Any) -> None:
        try:
            changes = admission.mutate(_plain(body))
        except admission.Denied as exc:
            raise kopf.AdmissionError(str(exc), code=exc.code) from None
        patch.update(changes)

    @kopf.on.validate("", "v1", "pods", id=admission.VALIDATE_ID, operations=["CREATE", "UPDATE"],
                      registry=registry)
    def validate_pod(body: Any, old: Any, userinfo: Any, operation: Any, dryrun: bool = False, **_: Any) -> None:
        previous = _plain(old) if operation == "UPDATE" and old is not None else None
        try:
            admission.validate(_plain(body), previous, userinfo, ctl.may_use, ctl.attachment_network)
        except admission.Denied as exc:
            raise kopf.AdmissionError(str(exc), code=exc.code) from None
        if operation == "CREATE" and not dryrun:
            ctl.hold_references(_plain(body))

    return registry


def connection_info(cfg: Any) -> kopf.ConnectionInfo:
    """kopf's credentials from a loaded kubernetes client Configuration."""
    auth = (cfg.api_key or {}).get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return kopf.ConnectionInfo(
        server=cfg.host, ca_path=cfg.ssl_ca_cert, insecure=not cfg.verify_ssl,
        certificate_path=cfg.cert_file, private_key_path=cfg.key_file,
        scheme=scheme or None, token=token or None,
    )


def _plain(body: Any) -> Obj:
    return {k: body[k] for k in body}


def run(options: Options) -> int:
    """Entry point of `multinet controller`: wiring only."""
    kube = Kube.from_kubeconfig(options.kubeconfig)
    # Step 1: the API must exist before anything watches it.
    install.install_crds(kube)
    # Step 2: only one replica is active; the others wait here.
    lease = LeaderLease(kube)
    lease.acquire()
    # Step 3: index every object and every address claim before a worker starts.
    ctl = Controller(kube, options)
    ctl.prime()
    # Step 4: TLS for the webhooks, made here so it works on any cluster.
    cert_dir = Path(options.cert_dir or tempfile.mkdtemp(prefix="multinet-webhook-"))
    cert = serving_cert(cert_dir, WEBHOOK_HOST)
    # Step 5: kopf watches, serves admission and runs until signalled.
    registry = build_registry(ctl, cert)
    try:
        kopf.run(registry=registry, clusterwide=True, standalone=True)
    finally:
        lease.release()
    return 0
