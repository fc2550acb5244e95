"""Reconciler of a Service on its secondary network: its virtual IP on that
network, and its EndpointSlices holding the selected pods' addresses there."""

from __future__ import annotations

from controller.allocator import Allocator
from controller.endpoints import HASH_ANNOTATION, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, desired_slices
from controller.index import Index
from controller.kube import Kube, Obj, is_status
from controller.networks import params_verdict
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
        self.kube.core.patch_namespaced_service(svc["metadata"]["name"], svc["metadata"]["namespace"], {
            "metadata": {"annotations": {names.SERVICE_VIP_ANNOTATION: str(vip)}}})

    def reconcile(self, namespace: str, name: str) -> None:
        svc = self._service(namespace, name)
        network = ((svc or {}).get("metadata", {}).get("annotations") or {}).get(names.POD_NETWORK_ANNOTATION)
        desired = []
        if svc is not None and network:
            self._ensure_vip(svc, network)
            selector = (svc.get("spec") or {}).get("selector") or {}
            pods = [] if not selector else [
                self.kube.plain(p) for p in self.kube.core.list_namespaced_pod(
                    namespace, label_selector=",".join(f"{k}={v}" for k, v in selector.items())).items]
            desired = desired_slices(svc, network, pods)
        existing = {s.metadata.name: s for s in self.kube.discovery.list_namespaced_endpoint_slice(
            namespace, label_selector=f"{MANAGED_BY_LABEL}={names.ENDPOINTSLICE_MANAGED_BY},"
                                      f"{SERVICE_NAME_LABEL}={name}").items}
        for body in desired:
            current = existing.pop(body["metadata"]["name"], None)
            if current is None:
                self.kube.discovery.create_namespaced_endpoint_slice(namespace, body)
            elif (current.metadata.annotations or {}).get(HASH_ANNOTATION) != body["metadata"]["annotations"][HASH_ANNOTATION]:
                body["metadata"]["resourceVersion"] = current.metadata.resource_version
                self.kube.discovery.replace_namespaced_endpoint_slice(body["metadata"]["name"], namespace, body)
        for stale in existing:
            try:
                self.kube.discovery.delete_namespaced_endpoint_slice(stale, namespace)
            except Exception as exc:
                if not is_status(exc, 404):
                    raise

    def _service(self, namespace: str, name: str) -> dict | None:  # type: ignore[type-arg]
        try:
            return self.kube.plain(self.kube.core.read_namespaced_service(name, namespace))
        except Exception as exc:
            if is_status(exc, 404):
                return None
            raise
