"""The agent's adapter to the apiserver: its caches and its reporter, over kube/.

Caches: the node's own pods (field selector spec.nodeName), PodNetworks,
PodNetworkAttachments and NetworkParams, each a kube.Informer, so an ADD
needs no round trip in the common case (a cache miss falls back to one GET:
the pod may have been bound a moment ago). The reporter writes status from
one worker thread so ADD latency never includes apiserver writes.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from agent.plan import params_key
from agent.record import PodRef
from agent.sources import PodNetworking
from cni.spec import Code, CniError
from kube import EventWriter, Informer, Kube, KubeError, ObjectRef, Obj, PatchType
from kube.informer import Informers
from kube.clock import now_rfc3339
from kube.kinds import NETWORK_PARAMS, POD_NETWORK_ATTACHMENTS, POD_NETWORKS
from kube.resources import PODS, Resource
from podnetwork.allocations import Allocation, parse_allocations
from podnetwork.names import (
    ALLOCATIONS_ANNOTATION,
    DEFAULT_NETWORK,
    NETWORKS_ANNOTATION,
    NETWORK_STATUS_ANNOTATION,
    NPWG_NETWORK_STATUS_ANNOTATION,
    PARAMS_GROUP,
    PARAMS_KIND,
    READINESS_CONDITION,
)
from podnetwork.networks import NetworksError, parse_networks
from podnetwork.params import NetworkParams, parse_params
from podnetwork.status import InterfaceStatus, encode_network_status, encode_npwg_network_status

log = logging.getLogger(__name__)


class KubePods:
    """The PodSource of a real cluster."""

    def __init__(self, kube: Kube, node: str) -> None:
        self.kube = kube
        self.node = node
        self.pods = Informer(kube, PODS, field_selector=f"spec.nodeName={node}", name="pods")
        self.networks = Informer(kube, POD_NETWORKS)
        self.attachments = Informer(kube, POD_NETWORK_ATTACHMENTS)
        self.params = Informer(kube, NETWORK_PARAMS)
        self._caches = Informers(self.pods, self.networks, self.attachments, self.params)

    def start(self) -> None:
        self._caches.start()

    def stop(self) -> None:
        self._caches.stop()

    def synced(self) -> bool:
        return self._caches.synced

    def wait_synced(self, timeout: float) -> bool:
        return self._caches.wait_synced(timeout)

    def networking(self, pod: PodRef) -> PodNetworking:
        obj = self._pod(pod)
        annotations = obj.get("metadata", {}).get("annotations") or {}
        raw = annotations.get(ALLOCATIONS_ANNOTATION)
        if raw is None and wants_secondary_networks(annotations.get(NETWORKS_ANNOTATION)):
            # The controller may have written them a moment ago: one fresh read.
            fresh = self._get(PODS, pod.name, pod.namespace)
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
        found = {params_key(a): self._params_for(pod, a) for a in allocations}
        # None: a PodNetwork without parameters, an address-less network (agent/plan.py).
        params = {key: p for key, p in found.items() if p is not None}
        return PodNetworking(pod, allocations, params)

    def _params_for(self, pod: PodRef, a: Allocation) -> NetworkParams | None:
        """An attachment's own parametersRefs win over its PodNetwork's."""
        attachment = a.pod_network_attachment_name
        if attachment:
            pna = self.attachments.get(pod.namespace, attachment) or self._get(
                POD_NETWORK_ATTACHMENTS, attachment, pod.namespace)
            if pna is None:
                raise CniError(Code.TRY_AGAIN_LATER, f"PodNetworkAttachment {pod.namespace}/{attachment} not found")
            name = _params_ref(pna)
            if name is not None:
                return self._load_params(name, f"PodNetworkAttachment {pod.namespace}/{attachment}")
        return self._params_of(a.pod_network_name)

    def _pod(self, pod: PodRef) -> dict[str, Any]:
        obj = self.pods.get(pod.namespace, pod.name)
        if obj is None or (pod.uid and obj["metadata"].get("uid") != pod.uid):
            # A round trip inside ADD: the watch has not brought the pod yet.
            log.debug("pod %s/%s not (yet) in the cache: one GET", pod.namespace, pod.name)
            obj = self._get(PODS, pod.name, pod.namespace)
            if obj is not None:
                self.pods.put(obj)
        if obj is None:
            raise CniError(Code.TRY_AGAIN_LATER, f"pod {pod.namespace}/{pod.name} not found")
        if pod.uid and obj["metadata"].get("uid") != pod.uid:
            raise CniError(Code.TRY_AGAIN_LATER, f"pod {pod.namespace}/{pod.name} has uid {obj['metadata'].get('uid')}, not K8S_POD_UID {pod.uid}")
        return obj

    def _params_of(self, network: str) -> NetworkParams | None:
        pn = self.networks.get("", network) or self._get(POD_NETWORKS, network)
        if pn is None:
            raise CniError(Code.TRY_AGAIN_LATER, f"PodNetwork {network} not found")
        if not pn.get("spec", {}).get("parametersRefs"):
            return None  # address-less: the allocation carries no addresses to plan
        name = _params_ref(pn)
        if name is None:
            raise CniError(Code.INVALID_CONFIG, f"PodNetwork {network}: spec.parametersRefs names no {PARAMS_KIND}")
        return self._load_params(name, f"PodNetwork {network}")

    def _load_params(self, name: str, owner: str) -> NetworkParams:
        obj = self.params.get("", name) or self._get(NETWORK_PARAMS, name)
        if obj is None:
            raise CniError(Code.TRY_AGAIN_LATER, f"{PARAMS_KIND} {name} of {owner} not found")
        try:
            return parse_params(obj.get("spec") or {})
        except ValueError as err:  # ParamsError: names each bad field
            raise CniError(Code.INVALID_CONFIG, f"{PARAMS_KIND} {name}: {err}") from None

    def _get(self, resource: Resource, name: str, namespace: str | None = None) -> Obj | None:
        """One GET past the cache; None when the object does not exist."""
        try:
            return self.kube.find(resource, name, namespace)
        except KubeError as err:  # unreachable, throttled, refused: the runtime retries ADD
            raise CniError(Code.TRY_AGAIN_LATER, f"apiserver: {err}") from None


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

    def __init__(self, kube: Kube, node: str) -> None:
        self.kube = kube
        self.events = EventWriter(kube, "multinet-agent", host=node)
        self._queue: queue.Queue[Callable[[], Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="reporter", daemon=True)
        self._thread.start()

    def attached(self, pod: PodRef, statuses: tuple[InterfaceStatus, ...]) -> None:
        self._queue.put(lambda: self._write_attached(pod, statuses))

    def failed(self, pod: PodRef, message: str) -> None:
        about = ObjectRef(kind="Pod", name=pod.name, namespace=pod.namespace, uid=pod.uid or None)
        self._queue.put(lambda: self.events.post(about, "NetworkAttachFailed", message))

    def table_full(self, network: str, message: str) -> None:
        about = ObjectRef(kind=POD_NETWORKS.kind, name=network, api_version=POD_NETWORKS.api_version)
        self._queue.put(lambda: self.events.post(about, "DatapathTableFull", message))

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
            except KubeError as err:  # a pod gone meanwhile, the apiserver away: the next ADD writes again
                log.warning("status write: %s", err)

    def _write_attached(self, pod: PodRef, statuses: tuple[InterfaceStatus, ...]) -> None:
        annotations = {
            NETWORK_STATUS_ANNOTATION: encode_network_status(statuses),
            NPWG_NETWORK_STATUS_ANNOTATION: encode_npwg_network_status(statuses, pod.namespace),
        }
        condition = {"type": READINESS_CONDITION, "status": "True", "reason": "InterfacesAttached",
                     "message": f"{len(statuses)} interface(s) attached", "lastTransitionTime": now_rfc3339()}
        # One write through pods/status, which may change annotations too: the pod's watchers
        # see the annotations and the condition together. It matters to the kubelet: a change
        # of status alone never reaches its pod worker, so a condition written after the
        # annotations left its next sync with a pod that lacked it, and Ready waited for the
        # following relist (a second). Strategic merge: conditions merge by type, so the
        # kubelet's own stay (a merge patch would replace the list).
        self.kube.patch(PODS, pod.name, {"metadata": {"annotations": annotations},
                                         "status": {"conditions": [condition]}},
                        pod.namespace, subresource="status", patch_type=PatchType.STRATEGIC)
