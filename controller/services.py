"""Reconciler of a Service on its secondary network: its virtual IP on that
network, and its EndpointSlices holding the selected pods' addresses there."""

from __future__ import annotations

from controller.allocator import Allocator
from controller.endpoints import HASH_ANNOTATION, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, desired_slices
from controller.index import Index
from controller.networks import params_verdict
from kube import Kube, NotFound, Obj
from kube.resources import ENDPOINT_SLICES, PODS, SERVICES
from podnetwork import names
from podnetwork.ipam import Pool
from podnetwork.params import FamilyParams


class ServiceReconciler:
    def __init__(self, kube: Kube, index: Index, allocator: Allocator) -> None:
        self.kube = kube
        self.index = index
        self.allocator = allocator

    def _ensure_vip(self, svc: Obj, network: str) -> None:
        """Give the Service a VIP from its network's service range, once.

        A VIP the user wrote is kept. The address is claimed like a pod's (one
        IPAllocation, owned by the Service's uid), so it is never handed out
        twice; the controller's sweep frees it when the Service is gone.
        """
        if names.SERVICE_VIP_ANNOTATION in (svc["metadata"].get("annotations") or {}):
            return
        obj = self.index.get("network", network)
        _, binding = params_verdict(self.index, ((obj or {}).get("spec") or {}).get("parametersRefs"))
        ranges = [c for c in binding.params.service_cidrs if c.version == 4] if binding else []
        if not ranges:
            return  # no service range on this network: the datapath uses spec.clusterIP
        pool = Pool.from_family(FamilyParams(subnet=ranges[0], gateway=None, excludes=()))
        vip = self.allocator.allocate(svc, network, pool)
        self.kube.patch(SERVICES, svc["metadata"]["name"], {
            "metadata": {"annotations": {names.SERVICE_VIP_ANNOTATION: str(vip)}}}, svc["metadata"]["namespace"])

    def reconcile(self, namespace: str, name: str) -> None:
        svc = self.kube.find(SERVICES, name, namespace)
        network = ((svc or {}).get("metadata", {}).get("annotations") or {}).get(names.POD_NETWORK_ANNOTATION)
        desired = []
        if svc is not None and network:
            self._ensure_vip(svc, network)
            selector = (svc.get("spec") or {}).get("selector") or {}
            pods = [] if not selector else self.kube.list(
                PODS, namespace, label_selector=",".join(f"{k}={v}" for k, v in selector.items()))
            desired = desired_slices(svc, network, pods)
        existing: dict[str, Obj] = {s["metadata"]["name"]: s for s in self.kube.list(
            ENDPOINT_SLICES, namespace, label_selector=f"{MANAGED_BY_LABEL}={names.ENDPOINTSLICE_MANAGED_BY},"
                                                       f"{SERVICE_NAME_LABEL}={name}")}
        for body in desired:
            current = existing.pop(body["metadata"]["name"], None)
            if current is None:
                self.kube.create(ENDPOINT_SLICES, body, namespace)
            elif _digest(current) != body["metadata"]["annotations"][HASH_ANNOTATION]:
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                self.kube.replace(ENDPOINT_SLICES, body["metadata"]["name"], body, namespace)
        for stale in existing:
            try:
                self.kube.delete(ENDPOINT_SLICES, stale, namespace)
            except NotFound:
                pass  # gone already


def _digest(endpoint_slice: Obj) -> str | None:
    return (endpoint_slice["metadata"].get("annotations") or {}).get(HASH_ANNOTATION)
