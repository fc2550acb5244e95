"""The agent's adapter to the apiserver: informer-style caches and the reporter.

Caches: the node's own pods (field selector spec.nodeName), PodNetworks and
NetworkParams, each kept by a list-then-watch thread, so an ADD needs no round
trip in the common case (a cache miss falls back to one GET: the pod may have
been bound a moment ago). The reporter writes status from one worker thread so
ADD latency never includes apiserver writes.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from agent.record import PodRef
from agent.sources import PodNetworking
from agent.plan import params_key
from podnetwork.allocations import Allocation, parse_allocations
from podnetwork.networks import NetworksError, parse_networks
from podnetwork.params import NetworkParams, parse_params
from podnetwork.status import InterfaceStatus, encode_network_status, encode_npwg_network_status
from cni.spec import Code, CniError
from podnetwork.names import (
    ALLOCATIONS_ANNOTATION,
    DEFAULT_NETWORK,
    GROUP,
    NETWORK_STATUS_ANNOTATION,
    NETWORKS_ANNOTATION,
    NPWG_NETWORK_STATUS_ANNOTATION,
    PARAMS_GROUP,
    PARAMS_KIND,
    PARAMS_PLURAL,
    PARAMS_VERSION,
    POD_NETWORK_ATTACHMENT_PLURAL,
    POD_NETWORK_PLURAL,
    READINESS_CONDITION,
    VERSION,
)

log = logging.getLogger(__name__)
WATCH_SECONDS = 240
RETRY_SECONDS = 2.0


class _Cache:
    """One list-then-watch loop over objects kept as plain dicts, keyed by (namespace, name)."""

    def __init__(self, kind: str, lister: Callable[..., Any], stop: threading.Event,
                 on_change: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._lister = lister
        self._stop = stop
        self._on_change = on_change or (lambda: None)  # marks work dirty; never does it
        self._items: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.synced = threading.Event()

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get((namespace, name))

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items.values())

    def put(self, obj: dict[str, Any]) -> None:
        with self._lock:
            self._items[_key(obj)] = obj

    def run(self) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list()
                # A watch that times out resumes where it was; only an
                # expired version (410) or an error costs a new listing.
                version = self._watch(version)
            except ApiException as err:
                version = None
                if err.status == 404:
                    # The kind is not installed (yet): an empty cache is the truth.
                    with self._lock:
                        self._items.clear()
                    self.synced.set()
                elif err.status != 410:
                    log.warning("%s watch: %s", self.kind, err.reason)
                self._stop.wait(RETRY_SECONDS)
            except (HTTPError, OSError, ValueError) as err:
                version = None
                log.warning("%s watch: %s", self.kind, err)
                self._stop.wait(RETRY_SECONDS)

    def _list(self) -> str:
        listing = self._lister()
        with self._lock:
            self._items = {_key(o): o for o in listing.get("items", [])}
        self.synced.set()
        self._on_change()
        return str(listing.get("metadata", {}).get("resourceVersion", ""))

    def _watch(self, version: str) -> str | None:
        """Apply events until the watch ends; the version to resume from (None: relist)."""
        stream = watch.Watch(return_type="object").stream(
            self._lister, resource_version=version, timeout_seconds=WATCH_SECONDS, deserialize=False
        )
        for event in stream:
            obj = event["object"]
            if event["type"] == "ERROR" or not isinstance(obj, dict):
                return None
            with self._lock:
                if event["type"] == "DELETED":
                    self._items.pop(_key(obj), None)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    self._items[_key(obj)] = obj
            self._on_change()
            version = str(obj.get("metadata", {}).get("resourceVersion") or version)
            if self._stop.is_set():
                break
        return version


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata", {})
    return meta.get("namespace", ""), meta.get("name", "")


def _raw(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A list call returning plain dicts, so pods and custom objects share a cache.
    A watch passes `watch=True, _preload_content=False` and reads the stream itself."""

    def call(**kwargs: Any) -> Any:
        if kwargs.get("watch"):
            return fn(**kwargs)
        return json.loads(fn(_preload_content=False, **kwargs).data)

    return call


class KubePods:
    """The PodSource of a real cluster."""

    def __init__(self, api: client.ApiClient, node: str) -> None:
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.node = node
        self._stop = threading.Event()
        selector = f"spec.nodeName={node}"
        self.pods = _Cache(
            "pods", _raw(lambda **kw: self.core.list_pod_for_all_namespaces(field_selector=selector, **kw)), self._stop
        )
        self.networks = _Cache(
            "podnetworks",
            _raw(lambda **kw: self.custom.list_cluster_custom_object(GROUP, VERSION, POD_NETWORK_PLURAL, **kw)),
            self._stop,
        )
        self.attachments = _Cache(
            "podnetworkattachments",
            _raw(lambda **kw: self.custom.list_cluster_custom_object(GROUP, VERSION, POD_NETWORK_ATTACHMENT_PLURAL, **kw)),
            self._stop,
        )
        self.params = _Cache(
            "networkparams",
            _raw(lambda **kw: self.custom.list_cluster_custom_object(PARAMS_GROUP, PARAMS_VERSION, PARAMS_PLURAL, **kw)),
            self._stop,
        )
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for cache in self._caches():
            thread = threading.Thread(target=cache.run, name=f"watch-{cache.kind}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()

    def _caches(self) -> tuple[_Cache, ...]:
        return (self.pods, self.networks, self.attachments, self.params)

    def synced(self) -> bool:
        return all(c.synced.is_set() for c in self._caches())

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(c.synced.wait(max(0.0, deadline - time.monotonic())) for c in self._caches())

    def networking(self, pod: PodRef) -> PodNetworking:
        obj = self._pod(pod)
        annotations = obj.get("metadata", {}).get("annotations") or {}
        raw = annotations.get(ALLOCATIONS_ANNOTATION)
        if raw is None and wants_secondary_networks(annotations.get(NETWORKS_ANNOTATION)):
            # The controller may have written them a moment ago: one fresh read.
            fresh = self._get(lambda: self.core.read_namespaced_pod(pod.name, pod.namespace, _preload_content=False))
            if fresh is not None:
                self.pods.put(fresh)
                annotations = fresh.get("metadata", {}).get("annotations") or {}
                raw = annotations.get(ALLOCATIONS_ANNOTATION)
        if raw is None:
            if wants_secondary_networks(annotations.get(NETWORKS_ANNOTATION)):
                raise CniError(Code.TRY_AGAIN_LATER, f"pod {pod.namespace}/{pod.name} has no {ALLOCATIONS_ANNOTATION} yet")
            return PodNetworking(pod)
        try:
            allocations = parse_allocations(raw)
        except ValueError as err:  # AllocationsError: names each bad field
            raise CniError(Code.INVALID_CONFIG, f"pod {pod.namespace}/{pod.name}: {err}") from None
        params = {params_key(a): self._params_for(pod, a) for a in allocations}
        return PodNetworking(pod, allocations, params)

    def _params_for(self, pod: PodRef, a: Allocation) -> NetworkParams:
        """An attachment's own parametersRefs win over its PodNetwork's."""
        attachment = a.pod_network_attachment_name
        if attachment:
            pna = self.attachments.get(pod.namespace, attachment) or self._get(
                lambda: self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, pod.namespace, POD_NETWORK_ATTACHMENT_PLURAL, attachment, _preload_content=False
                )
            )
            if pna is None:
                raise CniError(Code.TRY_AGAIN_LATER, f"PodNetworkAttachment {pod.namespace}/{attachment} not found")
            name = _params_ref(pna)
            if name is not None:
                return self._load_params(name, f"PodNetworkAttachment {pod.namespace}/{attachment}")
        return self._params_of(a.pod_network_name)

    def _pod(self, pod: PodRef) -> dict[str, Any]:
        obj = self.pods.get(pod.namespace, pod.name)
        if obj is None or (pod.uid and obj["metadata"].get("uid") != pod.uid):
            obj = self._get(lambda: self.core.read_namespaced_pod(pod.name, pod.namespace, _preload_content=False))
            if obj is not None:
                self.pods.put(obj)
        if obj is None:
            raise CniError(Code.TRY_AGAIN_LATER, f"pod {pod.namespace}/{pod.name} not found")
        if pod.uid and obj["metadata"].get("uid") != pod.uid:
            raise CniError(Code.TRY_AGAIN_LATER, f"pod {pod.namespace}/{pod.name} has uid {obj['metadata'].get('uid')}, not K8S_POD_UID {pod.uid}")
        return obj

    def _params_of(self, network: str) -> NetworkParams:
        pn = self.networks.get("", network) or self._get(
            lambda: self.custom.get_cluster_custom_object(GROUP, VERSION, POD_NETWORK_PLURAL, network, _preload_content=False)
        )
        if pn is None:
            raise CniError(Code.TRY_AGAIN_LATER, f"PodNetwork {network} not found")
        name = _params_ref(pn)
        if name is None:
            raise CniError(Code.INVALID_CONFIG, f"PodNetwork {network}: spec.parametersRefs names no {PARAMS_KIND}")
        return self._load_params(name, f"PodNetwork {network}")

    def _load_params(self, name: str, owner: str) -> NetworkParams:
        obj = self.params.get("", name) or self._get(
            lambda: self.custom.get_cluster_custom_object(PARAMS_GROUP, PARAMS_VERSION, PARAMS_PLURAL, name, _preload_content=False)
        )
        if obj is None:
            raise CniError(Code.TRY_AGAIN_LATER, f"{PARAMS_KIND} {name} of {owner} not found")
        try:
            return parse_params(obj.get("spec") or {})
        except ValueError as err:  # ParamsError: names each bad field
            raise CniError(Code.INVALID_CONFIG, f"{PARAMS_KIND} {name}: {err}") from None

    @staticmethod
    def _get(call: Callable[[], Any]) -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] = json.loads(call().data)
            return doc
        except ApiException as err:
            if err.status == 404:
                return None
            raise CniError(Code.TRY_AGAIN_LATER, f"apiserver: {err.reason}") from None
        except (HTTPError, OSError) as err:
            raise CniError(Code.TRY_AGAIN_LATER, f"apiserver unreachable: {err}") from None


def _params_ref(obj: dict[str, Any]) -> str | None:
    """The name of the NetworkParams an object's spec.parametersRefs points at."""
    for ref in obj.get("spec", {}).get("parametersRefs") or []:
        if ref.get("kind") == PARAMS_KIND and ref.get("group", PARAMS_GROUP) == PARAMS_GROUP:
            return str(ref["name"])
    return None


def wants_secondary_networks(networks: str | None) -> bool:
    """Whether the pod's networks annotation asks for more than the default
    network (then the controller's allocations must come first)."""
    if not networks:
        return False
    try:
        entries = parse_networks(networks)
    except NetworksError:
        return True  # admission validates it; until then, wait rather than guess
    return any(n.pod_network_name not in ("", DEFAULT_NETWORK) or n.pod_network_attachment_name for n in entries)


class KubeReporter:
    """Writes network-status, the readiness condition and failure Events, off the ADD path."""

    def __init__(self, api: client.ApiClient, node: str) -> None:
        self.core = client.CoreV1Api(api)
        self.node = node
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="reporter", daemon=True)
        self._thread.start()

    def attached(self, pod: PodRef, statuses: tuple[InterfaceStatus, ...]) -> None:
        self._queue.put(lambda: self._write_attached(pod, statuses))

    def failed(self, pod: PodRef, message: str) -> None:
        self._queue.put(lambda: self._write_event(pod, message))

    def flush(self) -> None:
        done = threading.Event()
        self._queue.put(done.set)
        done.wait(30)

    def stop(self) -> None:
        self._queue.put(None)

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                job()
            except ApiException as err:
                log.warning("status write: %s %s", err.status, err.reason)
            except (HTTPError, OSError) as err:
                log.warning("status write: %s", err)

    def _write_attached(self, pod: PodRef, statuses: tuple[InterfaceStatus, ...]) -> None:
        annotations = {
            NETWORK_STATUS_ANNOTATION: encode_network_status(statuses),
            NPWG_NETWORK_STATUS_ANNOTATION: encode_npwg_network_status(statuses, pod.namespace),
        }
        self.core.patch_namespaced_pod(pod.name, pod.namespace, {"metadata": {"annotations": annotations}})
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = {"type": READINESS_CONDITION, "status": "True", "reason": "InterfacesAttached",
                     "message": f"{len(statuses)} interface(s) attached", "lastTransitionTime": now}
        self.core.patch_namespaced_pod_status(pod.name, pod.namespace, {"status": {"conditions": [condition]}})

    def _write_event(self, pod: PodRef, message: str) -> None:
        now = datetime.now(timezone.utc)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{pod.name}.", namespace=pod.namespace),
            involved_object=client.V1ObjectReference(kind="Pod", namespace=pod.namespace, name=pod.name, uid=pod.uid or None, api_version="v1"),
            reason="NetworkAttachFailed", message=message[:1000], type="Warning",
            source=client.V1EventSource(component="multinet-agent", host=self.node),
            first_timestamp=now, last_timestamp=now, count=1,
        )
        self.core.create_namespaced_event(pod.namespace, event)
