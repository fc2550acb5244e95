"""Reconciler of a Service's EndpointSlices on its secondary network."""

from __future__ import annotations

from controller.endpoints import HASH_ANNOTATION, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, desired_slices
from controller.kube import Kube, is_status
from podnetwork import names


class ServiceReconciler:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def reconcile(self, namespace: str, name: str) -> None:
        svc = self._service(namespace, name)
        network = ((svc or {}).get("metadata", {}).get("annotations") or {}).get(names.POD_NETWORK_ANNOTATION)
        desired = []
        if svc is not None and network:
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
