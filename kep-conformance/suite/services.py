"""Services on a secondary network, as the binding names them: the Service
carries the network annotation; its address there is the binding's address
annotation (else spec.clusterIP); its per-network EndpointSlices carry the
binding's managed-by (and network label)."""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from suite.binding import Binding
from suite.kube import Obj, wait_for
from suite.pods import HTTP_PORT
from suite.probes import ProbePod, ProbePods
from suite.truth import Seen

CLUSTER_MANAGED_BY = "endpointslice-controller.k8s.io"
SERVICE_PORT = 80
SPREAD_TRIES = 30  # connections per spread sample; each is a new flow, balanced anew


def service_body(binding: Binding, name: str, network: str, selector: dict[str, str],
                 target_port: int | str = HTTP_PORT) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "annotations": {str(binding.service_annotation): network}},
            "spec": {"selector": selector,
                     "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": target_port, "protocol": "TCP"}]}}


def address(core: client.CoreV1Api, binding: Binding, namespace: str, name: str, timeout: float) -> str:
    """The Service's address on its network."""
    def read() -> str | None:
        svc: Obj = core.read_namespaced_service(name, namespace)
        if binding.service_address_annotation:
            return (svc.metadata.annotations or {}).get(binding.service_address_annotation)
        return str(svc.spec.cluster_ip) if svc.spec.cluster_ip not in (None, "", "None") else None
    found: str = wait_for(read, timeout, f"Service {namespace}/{name}'s address on its network")
    return found


@dataclass(frozen=True)
class Endpoint:
    address: str
    ready: bool
    pod: str | None
    node: str | None
    port: int | None


def slices(discovery: client.DiscoveryV1Api, namespace: str, service: str) -> dict[str, list[Endpoint]]:
    """Endpoints of the Service's EndpointSlices, by managed-by."""
    out: dict[str, list[Endpoint]] = {}
    s: Obj
    for s in discovery.list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={service}").items:
        manager = (s.metadata.labels or {}).get("endpointslice.kubernetes.io/managed-by", "")
        port = next((p.port for p in s.ports or [] if p.name == "http"), None)
        for ep in s.endpoints or []:
            ready = bool(ep.conditions and ep.conditions.ready)
            pod = ep.target_ref.name if ep.target_ref and ep.target_ref.kind == "Pod" else None
            for a in ep.addresses:
                out.setdefault(manager, []).append(Endpoint(str(ipaddress.ip_address(a)), ready, pod, ep.node_name,
                                                            port))
    return out


def network_slices(binding: Binding, found: dict[str, list[Endpoint]]) -> list[Endpoint]:
    if binding.slice_managed_by:
        return found.get(binding.slice_managed_by, [])
    return [e for manager, eps in found.items() if manager != CLUSTER_MANAGED_BY for e in eps]


def spread(probes: ProbePods, client_pod: ProbePod, vip: str, tries: int = SPREAD_TRIES) -> Counter[str]:
    """Which backends answered `tries` fresh connections to vip:80 (each a new flow, balanced anew).

    Stops early after three failures in a row: a dead address would otherwise
    cost netexec's 5 s per try.
    """
    answers: Counter[str] = Counter()
    failures = 0
    for _ in range(tries):
        obs = probes.dial(client_pod, vip, SERVICE_PORT)
        if obs.seen is Seen.CONNECTED:
            answers[obs.detail] += 1
            failures = 0
        else:
            failures += 1
            answers[f"<{obs.seen.name.lower()}: {obs.detail[:60]}>"] += 1
            if failures >= 3:
                break
    return answers
