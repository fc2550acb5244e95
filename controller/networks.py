"""Reconcilers of PodNetwork, PodNetworkAttachment and NetworkParams.

Each takes the full current state of one object and converges it: conditions
(KEP-3698 "Status Conditions"), the in-use finalizer, the `default` network,
and the network id (VNI) of NetworkParams (or of a PodNetwork without them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller import keys
from controller.errors import TemporaryError
from controller.index import Index
from kube.kinds import NETWORK_ID_CLAIMS, NETWORK_PARAMS, POD_NETWORK_ATTACHMENTS, POD_NETWORKS
from kube import AlreadyExists, Conflict, Kube, NotFound, Obj, Resource
from kube.clock import now_rfc3339
from podnetwork import names
from podnetwork.conditions import (
    Condition,
    ParamsVerdict,
    attachment_conditions,
    is_ready,
    merge,
    pod_network_conditions,
)
from podnetwork.params import NETWORK_ID_MAX, NetworkParams, ParamsError, parse_params

log = logging.getLogger(__name__)

# Auto-allocated network ids start here, leaving the low range to operators who pin one.
AUTO_NETWORK_ID_FIRST = 4096

Enqueue = Callable[[keys.WorkKey], None]


@dataclass(frozen=True)
class Binding:
    """What attaching a pod to a network needs: its parameters (None: a PodNetwork
    without any, an address-less network) and effective network id."""

    network: str
    params: NetworkParams | None
    network_id: int

    @property
    def addressless(self) -> bool:
        return self.params is None or self.params.addressless


def default_pod_network() -> Obj:
    return {
        "apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.POD_NETWORK_KIND,
        "metadata": {"name": names.DEFAULT_NETWORK},
        "spec": {"enabled": True, "provider": names.PROVIDER},
    }


def params_verdict(index: Index, refs: list[Mapping[str, Any]] | None) -> tuple[ParamsVerdict | None, Binding | None]:
    """ParamsReady for a parametersRefs list (None when there are none), and the
    NetworkParams binding when usable. Reads the watch cache only."""
    if not refs:
        return None, None
    errors: list[str] = []
    ours = []
    for i, ref in enumerate(refs):
        if ref.get("group") == names.PARAMS_GROUP and ref.get("kind") == names.PARAMS_KIND:
            ours.append(ref)
        else:
            errors.append(f"parametersRefs[{i}]: {ref.get('kind')}.{ref.get('group')} is not served by "
                          f"provider {names.PROVIDER}")
    if errors:
        return ParamsVerdict(False, "UnsupportedParameters", "; ".join(errors)), None
    if len(ours) != 1:
        return ParamsVerdict(False, "AmbiguousParameters",
                             f"exactly one {names.PARAMS_KIND} may be referenced, got {len(ours)}"), None
    name = ours[0]["name"]
    obj = index.get("params", name)
    if obj is None:
        return ParamsVerdict(False, "NotFound", f"{names.PARAMS_KIND} {name!r} does not exist"), None
    try:
        params = parse_params(obj.get("spec") or {})
    except ParamsError as exc:
        return ParamsVerdict(False, "InvalidParameters", f"{names.PARAMS_KIND} {name!r}: {exc}"), None
    status = obj.get("status") or {}
    if not is_ready(status.get("conditions")) or not status.get("networkId"):
        why = next((c.get("message") for c in status.get("conditions") or [] if c.get("type") == "Ready"),
                   "no network id assigned yet")
        return ParamsVerdict(False, "NetworkIdPending", f"{names.PARAMS_KIND} {name!r}: {why}"), None
    return (ParamsVerdict(True, "Valid", f"{names.PARAMS_KIND} {name!r} is valid"),
            Binding("", params, int(status["networkId"])))


def address_less(index: Index, network: str) -> bool:
    """Whether a (known) PodNetwork is address-less: no parameters at all (and not the
    cluster default, which the primary CNI serves), or NetworkParams without ipv4/ipv6.
    Such a network cannot carry Services or NetworkPolicy: both need addresses."""
    obj = index.get("network", network)
    if obj is None or network == names.DEFAULT_NETWORK:
        return False
    refs = (obj.get("spec") or {}).get("parametersRefs")
    if not refs:
        return True
    _, binding = params_verdict(index, refs)
    return binding is not None and binding.addressless


def _conditions_patch(obj: Obj, desired: list[Condition]) -> list[dict[str, Any]] | None:
    """The new conditions list, or None when nothing would change."""
    current = (obj.get("status") or {}).get("conditions") or []
    merged = [c.to_json() for c in merge(current, desired, now_rfc3339())]
    return None if merged == current else merged


class NetworkReconciler:
    def __init__(self, kube: Kube, index: Index, enqueue: Enqueue) -> None:
        self.kube = kube
        self.index = index
        self.enqueue = enqueue

    # --- PodNetwork -----------------------------------------------------------------

    def pod_network(self, name: str) -> None:
        obj = self.kube.find(POD_NETWORKS, name)
        if obj is None:
            if name == names.DEFAULT_NETWORK:
                self._create_default()
            self.notify_dependents(name)
            return
        users = self.index.network_in_use(name, time.monotonic())
        if name == names.DEFAULT_NETWORK and obj["metadata"].get("deletionTimestamp"):
            # KEP "Availability": `default` is recreated on deletion rather than held
            # half-deleted by its (nearly always present) users; pods keep their network.
            users = []
        if self._converge_finalizer(obj, users, POD_NETWORKS):
            return  # deleted; the DELETED event brings us back (and recreates `default`)
        spec = obj.get("spec") or {}
        if not spec.get("parametersRefs") and name != names.DEFAULT_NETWORK:
            self._address_less_id(obj)
        verdict, _ = params_verdict(self.index, spec.get("parametersRefs"))
        desired = pod_network_conditions(spec.get("enabled", True), verdict, obj["metadata"].get("generation", 0))
        merged = _conditions_patch(obj, desired)
        if merged is not None:
            self.kube.patch(POD_NETWORKS, name, {"status": {"conditions": merged}}, subresource="status")
            self.notify_dependents(name)

    def _address_less_id(self, obj: Obj) -> None:
        """A PodNetwork without parameters is an address-less (layer 2) network: it
        still needs a network id (its VXLAN segment), claimed as NetworkParams claim
        theirs and kept in the network's own annotation for the pod reconciler."""
        meta = obj["metadata"]
        annotations = meta.get("annotations") or {}
        current = _int_or_none(annotations.get(names.NETWORK_ID_ANNOTATION))
        if current is not None:  # the usual case on a resync: one GET, not a list of every claim
            claim = self.kube.find(NETWORK_ID_CLAIMS, f"vni-{current}")
            if claim is not None and _owner_uid(claim) == meta["uid"]:
                return
        wanted = self._ensure_network_id(obj, None, current)
        if wanted != current:
            self.kube.patch(POD_NETWORKS, meta["name"], {"metadata": {
                "annotations": {names.NETWORK_ID_ANNOTATION: str(wanted)}}})
            self.notify_dependents(meta["name"])

    def _create_default(self) -> None:
        try:
            self.kube.create(POD_NETWORKS, default_pod_network())
            log.info("created the default PodNetwork")
        except AlreadyExists:
            pass  # another pass (or a user) made it meanwhile

    def notify_dependents(self, network: str) -> None:
        for ns, att in self.index.attachments_of(network):
            self.enqueue(keys.Attachment(ns, att))
        for pod in self.index.pods_of_network(network):
            if pod.gated:
                self.enqueue(keys.Pod(pod.namespace, pod.name))

    def _converge_finalizer(self, obj: Obj, users: list[str], resource: Resource) -> bool:
        """Hold the finalizer exactly while in use. True when the object is going away."""
        meta = obj["metadata"]
        finalizers: list[str] = list(meta.get("finalizers") or [])
        has = names.FINALIZER in finalizers
        deleting = bool(meta.get("deletionTimestamp"))
        if deleting and users:
            log.info("%s %s deletion waits for %s", resource.plural, meta["name"], ", ".join(users[:5]))
        if users and not has and not deleting:
            finalizers.append(names.FINALIZER)
        elif not users and has:
            finalizers.remove(names.FINALIZER)
        else:
            return deleting and not users and not has
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
        try:
            self.kube.patch(resource, meta["name"], patch, meta.get("namespace"))
        except Conflict:
            raise TemporaryError(f"{resource.plural} {meta['name']} changed meanwhile", delay=0.2) from None
        except NotFound:
            return True
        return deleting and not users

    # --- PodNetworkAttachment -------------------------------------------------------

    def attachment(self, namespace: str, name: str) -> None:
        obj = self.kube.find(POD_NETWORK_ATTACHMENTS, name, namespace)
        if obj is None:
            return
        if self._converge_finalizer(obj, self.index.attachment_in_use((namespace, name), time.monotonic()),
                                    POD_NETWORK_ATTACHMENTS):
            return
        spec = obj.get("spec") or {}
        network = spec.get("podNetworkName", "")
        net_obj = self.index.get("network", network)
        net_ready = None if net_obj is None else is_ready((net_obj.get("status") or {}).get("conditions"))
        verdict, _ = params_verdict(self.index, spec.get("parametersRefs"))
        desired = attachment_conditions(network, net_ready, verdict, obj["metadata"].get("generation", 0))
        merged = _conditions_patch(obj, desired)
        if merged is not None:
            self.kube.patch(POD_NETWORK_ATTACHMENTS, name, {"status": {"conditions": merged}}, namespace,
                            subresource="status")
            for pod in self.index.pods_of_attachment((namespace, name)):
                if pod.gated:
                    self.enqueue(keys.Pod(pod.namespace, pod.name))

    # --- NetworkParams --------------------------------------------------------------

    def params(self, name: str) -> None:
        obj = self.kube.find(NETWORK_PARAMS, name)
        if obj is None:
            self.notify_params_users(name)
            return
        generation = obj["metadata"].get("generation", 0)
        status: dict[str, Any] = {}
        try:
            params = parse_params(obj.get("spec") or {})
            status["networkId"] = self._ensure_network_id(obj, params.network_id,
                                                          (obj.get("status") or {}).get("networkId"))
            ready = Condition("Ready", "True", "Valid", "parameters are valid; network id assigned", generation)
        except ParamsError as exc:
            ready = Condition("Ready", "False", "InvalidParameters", str(exc), generation)
        except NetworkIdConflict as exc:
            ready = Condition("Ready", "False", "NetworkIdConflict", str(exc), generation)
        merged = _conditions_patch(obj, [ready])
        current_id = (obj.get("status") or {}).get("networkId")
        if merged is None and status.get("networkId") == current_id:
            return
        status["conditions"] = merged or obj["status"]["conditions"]
        if "networkId" not in status and current_id is not None:
            status["networkId"] = None  # an invalid or conflicting spec holds no id
        self.kube.patch(NETWORK_PARAMS, name, {"status": status}, subresource="status")
        self.notify_params_users(name)

    def notify_params_users(self, params_name: str) -> None:
        def uses(kind: str, key: Any) -> bool:
            refs = ((self.index.get(kind, key) or {}).get("spec") or {}).get("parametersRefs") or []
            return any(r.get("kind") == names.PARAMS_KIND and r.get("name") == params_name for r in refs)

        for name in self.index.keys("network"):
            if uses("network", name):
                self.enqueue(keys.Network(name))
        for ns, att in self.index.keys("attachment"):
            if uses("attachment", (ns, att)):
                self.enqueue(keys.Attachment(ns, att))

    def _ensure_network_id(self, obj: Obj, pinned: int | None, current: int | None) -> int:
        """Claim the network id (the pinned one, the one held already, or a free one) and
        release any other id this NetworkParams (or PodNetwork) held. The apiserver
        arbitrates: one NetworkIdClaim object per id."""
        meta = obj["metadata"]
        claims = self.kube.list(NETWORK_ID_CLAIMS)
        mine = [c for c in claims if _owner_uid(c) == meta["uid"]]
        held = {c["spec"]["networkId"] for c in mine}
        if pinned is not None:
            wanted = pinned
            if wanted not in held:
                self._claim(obj, wanted)
        elif current is not None and current in held:
            wanted = current
        elif held:
            wanted = min(held)
        else:
            wanted = self._claim_free(obj, {c["spec"]["networkId"] for c in claims})
        for claim in mine:
            if claim["spec"]["networkId"] != wanted:
                try:
                    self.kube.delete(NETWORK_ID_CLAIMS, claim["metadata"]["name"], uid=claim["metadata"]["uid"])
                except (NotFound, Conflict):
                    pass  # gone already, or the name now belongs to another claim
        return wanted

    def _claim_free(self, obj: Obj, taken: set[int]) -> int:
        for candidate in range(AUTO_NETWORK_ID_FIRST, NETWORK_ID_MAX + 1):
            if candidate in taken:
                continue
            try:
                self._claim(obj, candidate)
                return candidate
            except NetworkIdConflict:
                continue
        raise NetworkIdConflict("no free network id left")

    def _claim(self, obj: Obj, network_id: int) -> None:
        meta = obj["metadata"]
        kind = obj.get("kind") or names.PARAMS_KIND
        holder = "networkParams" if kind == names.PARAMS_KIND else "podNetwork"
        body = {
            "apiVersion": f"{names.PARAMS_GROUP}/{names.PARAMS_VERSION}", "kind": names.NETWORK_ID_CLAIM_KIND,
            "metadata": {"name": f"vni-{network_id}", "ownerReferences": [{
                "apiVersion": obj["apiVersion"], "kind": kind, "name": meta["name"],
                "uid": meta["uid"], "controller": True, "blockOwnerDeletion": False}]},
            "spec": {"networkId": network_id, holder: meta["name"]},
        }
        try:
            self.kube.create(NETWORK_ID_CLAIMS, body)
        except AlreadyExists:
            other = self.kube.find(NETWORK_ID_CLAIMS, f"vni-{network_id}")
            if other is None:
                raise TemporaryError(f"network id {network_id} is being released", delay=1.0) from None
            if _owner_uid(other) != meta["uid"]:
                raise NetworkIdConflict(f"spec.networkId {network_id} is already used by {_holder(other)}") from None


class NetworkIdConflict(Exception):
    pass


def _holder(claim: Obj) -> str:
    spec = claim.get("spec") or {}
    if spec.get("podNetwork"):
        return f"{names.POD_NETWORK_KIND} {spec['podNetwork']!r}"
    return f"{names.PARAMS_KIND} {spec.get('networkParams')!r}"


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None  # not ours (a user's edit): the held claim wins


def _owner_uid(obj: Obj) -> str | None:
    refs = obj["metadata"].get("ownerReferences") or []
    return refs[0].get("uid") if refs else None
