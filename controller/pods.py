"""Active validation, address allocation and scheduling-gate removal for one pod.

KEP-3698 "Active validations": the pod stays Pending (here: gated) until every
network it references exists and is Ready; an Event says what it waits for.
Once they are, the controller allocates the pod's addresses, writes them into
the allocations annotation and lifts the gate in one patch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from controller.allocator import Allocator
from controller.errors import PermanentError, TemporaryError
from controller.index import Index, pod_record
from controller.networks import Binding, params_verdict
from kube import Conflict, EventWriter, Invalid, Kube, KubeError, NotFound, Obj, ObjectRef, PatchType
from kube.resources import PODS
from podnetwork import faults, names
from podnetwork.allocations import Allocation, encode_allocations, resolve_interface_names
from podnetwork.conditions import is_ready
from podnetwork.ipam import Pool
from podnetwork.networks import Network, NetworksError, attachment_network_errors, pod_networks

log = logging.getLogger(__name__)


class NotReady(TemporaryError):
    """A referenced network is missing or not Ready: wait, with an Event."""


@dataclass(frozen=True)
class Resolved:
    entry: Network
    network: str
    binding: Binding


def _escape(key: str) -> str:
    """A JSON-pointer path segment (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


# (namespace, name) -> the pod as the pod informer holds it (`index.slim_pod`), or None
CachedPod = Callable[[str, str], Obj | None]


class PodReconciler:
    def __init__(self, kube: Kube, index: Index, allocator: Allocator, events: EventWriter,
                 cached: CachedPod) -> None:
        self.kube = kube
        self.cached = cached
        self.events = events
        self.index = index
        self.allocator = allocator
        self._said: dict[str, str] = {}  # pod uid -> last Event message, to not repeat it
        self._said_lock = threading.Lock()

    def reconcile(self, namespace: str, name: str) -> None:
        # The informer's copy, not a GET: the pod's watch event is what queued this key, so
        # the copy is at least that fresh, and the patch that lifts the gate applies only to
        # the pod as read (its uid, gates and networks tested). A pod not cached is gone,
        # or not yet seen: its watch event queues it again. One request fewer per pod.
        # Nothing read here is written to the index: that is the pod watch's alone.
        pod = self.cached(namespace, name)
        if pod is None:
            return
        record = pod_record(pod)
        if record.terminal:
            self.allocator.release(record.uid)
            return
        if not record.gated or pod["metadata"].get("deletionTimestamp"):
            return
        try:
            self._ungate(pod)
        except TemporaryError as exc:
            self._tell(pod, "NetworksNotReady" if isinstance(exc, NotReady) else "AllocationPending", str(exc))
            raise
        except PermanentError as exc:
            self._tell(pod, "InvalidNetworks", str(exc))
            raise

    def _ungate(self, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        try:
            networks = pod_networks(meta.get("annotations"), bool(spec.get("hostNetwork")))
        except NetworksError as exc:
            raise PermanentError(str(exc)) from None
        resolved = self._resolve(meta["namespace"], networks)
        ifnames = resolve_interface_names(networks)
        allocations = []
        for entry, ifname in zip(networks, ifnames):
            r = resolved.get(entry)
            if r is None:
                continue  # the cluster default network: nothing to allocate
            ips = []
            for family in r.binding.params.families() if r.binding.params else ():
                pool = Pool.from_family(family)
                address = self.allocator.allocate(pod, r.network, pool)
                if faults.on("duplicate-address"):  # every pod the pool's first address
                    address = pool.first_free(()) or address
                ips.append(pool.with_prefix(address))
            allocations.append(Allocation(
                pod_network_name=r.network, interface_name=ifname, network_id=r.binding.network_id,
                ips=tuple(ips), is_default_gw4=entry.is_default_gw4, is_default_gw6=entry.is_default_gw6,
                pod_network_attachment_name=entry.pod_network_attachment_name))
        self._lift_gate(pod, tuple(allocations))

    def _resolve(self, namespace: str, networks: tuple[Network, ...]) -> dict[Network, Resolved]:
        """Each non-default entry's network and parameters; NotReady lists every problem."""
        problems: list[str] = []
        attachment_networks: dict[str, str] = {}
        out: dict[Network, Resolved] = {}
        for entry in networks:
            if entry.is_default:
                # Nothing to allocate (the primary CNI serves it), but the KEP's active
                # validation holds for `default` too: it must exist and be Ready.
                self._ready(entry.pod_network_name, problems)
                continue
            network = entry.pod_network_name
            if entry.pod_network_attachment_name:
                att = self.index.get("attachment", (namespace, entry.pod_network_attachment_name))
                if att is None:
                    problems.append(f"PodNetworkAttachment {namespace}/{entry.pod_network_attachment_name} "
                                    "does not exist")
                    continue
                network = att["spec"]["podNetworkName"]
                attachment_networks[entry.pod_network_attachment_name] = network
                if not is_ready((att.get("status") or {}).get("conditions")):
                    problems.append(f"PodNetworkAttachment {namespace}/{entry.pod_network_attachment_name} "
                                    "is not Ready")
                    continue
            binding = self._binding(network, problems)
            if binding is not None and entry.pod_network_attachment_name:
                binding = self._attachment_binding(namespace, entry.pod_network_attachment_name, binding, problems)
            if binding is not None:
                out[entry] = Resolved(entry, network, binding)
        duplicate = attachment_network_errors(networks, attachment_networks)
        if duplicate:
            raise PermanentError("; ".join(duplicate))
        if problems:
            raise NotReady("waiting for networks: " + "; ".join(problems), delay=10.0)
        return out

    def _ready(self, network: str, problems: list[str]) -> Obj | None:
        """The PodNetwork when it exists and is Ready; else say why in `problems`."""
        obj = self.index.get("network", network)
        if obj is None:
            problems.append(f"PodNetwork {network!r} does not exist")
            return None
        conditions = (obj.get("status") or {}).get("conditions")
        if not is_ready(conditions):
            why = next((f"{c.get('reason')}: {c.get('message')}" for c in conditions or []
                        if c.get("type") == names.CONDITION_READY), "no Ready condition yet")
            problems.append(f"PodNetwork {network!r} is not Ready ({why})")
            return None
        return obj

    def _binding(self, network: str, problems: list[str]) -> Binding | None:
        obj = self._ready(network, problems)
        if obj is None:
            return None
        refs = (obj.get("spec") or {}).get("parametersRefs")
        if not refs:
            return self._address_less(network, obj, problems)
        _, binding = params_verdict(self.index, refs)
        if binding is None:  # Ready says the parameters are fine: the index is a moment behind
            problems.append(f"PodNetwork {network!r}: its {names.PARAMS_KIND} is not usable yet")
            return None
        return Binding(network, binding.params, binding.network_id)

    def _attachment_binding(self, namespace: str, attachment: str, binding: Binding,
                            problems: list[str]) -> Binding | None:
        """An attachment's own parametersRefs win over its PodNetwork's (the agent plans
        the interface by the same rule, agent/kube.py): its addresses come from them;
        the network id stays the PodNetwork's, whose segment the attachment is on."""
        att = self.index.get("attachment", (namespace, attachment)) or {}
        refs = (att.get("spec") or {}).get("parametersRefs")
        if not refs:
            return binding
        _, own = params_verdict(self.index, refs)
        if own is None:  # Ready says they are fine: the index is a moment behind
            problems.append(f"PodNetworkAttachment {namespace}/{attachment}: its {names.PARAMS_KIND} is not usable yet")
            return None
        return Binding(binding.network, own.params, binding.network_id)

    @staticmethod
    def _address_less(network: str, obj: Obj, problems: list[str]) -> Binding | None:
        """A PodNetwork without parameters: pods attach at layer 2, with no address,
        on the network id the network reconciler claimed for it."""
        text = (obj["metadata"].get("annotations") or {}).get(names.NETWORK_ID_ANNOTATION, "")
        if not text.isdigit():
            problems.append(f"PodNetwork {network!r} has no network id yet")
            return None
        return Binding(network, None, int(text))

    def _lift_gate(self, pod: Obj, allocations: tuple[Allocation, ...]) -> None:
        if faults.on("gate-never-lifted"):
            return
        meta, gates = pod["metadata"], pod["spec"].get("schedulingGates") or []
        remaining = [g for g in gates if g.get("name") != names.SCHEDULING_GATE]
        # The pod as read, or nothing: another pod of the same name (a uid test), other
        # gates, other networks (the addresses were allocated for these) fail the patch.
        ops: list[Obj] = [{"op": "test", "path": "/metadata/uid", "value": meta["uid"]},
                          {"op": "test", "path": "/spec/schedulingGates", "value": gates}]
        networks = (meta.get("annotations") or {}).get(names.NETWORKS_ANNOTATION)
        if networks is not None:
            ops.append({"op": "test", "path": f"/metadata/annotations/{_escape(names.NETWORKS_ANNOTATION)}",
                        "value": networks})
        if meta.get("annotations") is None:
            ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
        ops.append({"op": "add", "path": f"/metadata/annotations/{_escape(names.ALLOCATIONS_ANNOTATION)}",
                    "value": encode_allocations(allocations)})
        ops.append({"op": "replace", "path": "/spec/schedulingGates", "value": remaining} if remaining
                   else {"op": "remove", "path": "/spec/schedulingGates"})
        try:
            self.kube.patch(PODS, meta["name"], ops, meta["namespace"])
        except (Conflict, Invalid) as exc:  # 422: a `test` op failed (the cache is a moment behind)
            raise TemporaryError(f"pod changed while lifting the gate: {exc}", delay=0.2) from None
        except NotFound:
            return
        with self._said_lock:
            self._said.pop(meta["uid"], None)
        log.debug("pod %s/%s: gate lifted", meta["namespace"], meta["name"])

    def _tell(self, pod: Obj, reason: str, message: str) -> None:
        uid = pod["metadata"]["uid"]
        with self._said_lock:
            if self._said.get(uid) == message:
                return
            self._said[uid] = message
        try:
            self.events.post(ObjectRef.of(pod, kind="Pod"), reason, message)
        except KubeError as exc:  # an Event is advisory; never fail the reconcile over it
            log.warning("could not post event for %s: %s", pod["metadata"]["name"], exc)
        # KEP-3698 "Scheduler changes": a failed network validation also shows in the pod's
        # PodScheduled condition, with the Event's message. The apiserver set it to
        # False/SchedulingGated when the pod was created with our gate; the message says why.
        meta = pod["metadata"]
        condition = {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated",
                     "message": f"{reason}: {message}"[:32768]}
        try:
            # Strategic merge: conditions merge by type, the others stay.
            self.kube.patch(PODS, meta["name"], {"status": {"conditions": [condition]}}, meta["namespace"],
                            subresource="status", patch_type=PatchType.STRATEGIC)
        except KubeError as exc:  # advisory as the Event is
            log.warning("could not update PodScheduled of %s: %s", meta["name"], exc)

    def forget(self, uid: str) -> None:
        with self._said_lock:
            self._said.pop(uid, None)
