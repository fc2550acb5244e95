"""EndpointSlices of a Service on a secondary network, computed purely.

A Service annotated `POD_NETWORK_ANNOTATION: <network>` gets EndpointSlices of
our own `managed-by`, holding the selected pods' addresses on that network
(from their allocations annotation). Ports are resolved per pod, named
targetPorts included, so pods that disagree on a named port land in different
slices, as with the upstream EndpointSlice controller.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Mapping, Sequence
from typing import Any

from podnetwork import faults, names
from podnetwork.allocations import AllocationsError, parse_allocations

Obj = dict[str, Any]
MAX_ENDPOINTS = 100  # per slice, the upstream controller's default
HASH_ANNOTATION = "multinet.io/desired-hash"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"


def selects(selector: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> bool:
    """Service selector semantics: every key/value present; an empty selector selects nothing here."""
    return bool(selector) and all((labels or {}).get(k) == v for k, v in (selector or {}).items())


def resolve_ports(service_ports: Sequence[Mapping[str, Any]], pod: Mapping[str, Any]) -> tuple[tuple[str, int, str], ...] | None:
    """(name, port, protocol) per service port for this pod; None if a named port is missing."""
    containers = (pod.get("spec") or {}).get("containers") or []
    out = []
    for sp in service_ports:
        protocol = sp.get("protocol", "TCP")
        target = sp.get("targetPort", sp.get("port"))
        if isinstance(target, str) and not target.isdigit():
            found = [cp["containerPort"] for c in containers for cp in c.get("ports") or []
                     if cp.get("name") == target and cp.get("protocol", "TCP") == protocol]
            if not found:
                return None
            target = found[0]
        out.append((sp.get("name", ""), int(target), protocol))
    return tuple(out)


def pod_addresses(pod: Mapping[str, Any], network: str) -> list[str]:
    """The pod's addresses on `network` (no prefix length), from the allocations annotation."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(names.ALLOCATIONS_ANNOTATION)
    if not text:
        return []
    try:
        allocations = parse_allocations(text)
    except AllocationsError:
        return []
    return [str(ipaddress.ip_interface(ip).ip) for a in allocations if a.pod_network_name == network for ip in a.ips]


def _ready(pod: Mapping[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _endpoint(pod: Mapping[str, Any], address: str) -> Obj:
    meta = pod["metadata"]
    terminating = bool(meta.get("deletionTimestamp"))
    ready = _ready(pod) or faults.on("endpointslice-keeps-unready")
    ep: Obj = {
        "addresses": [address],
        "conditions": {"ready": ready and not terminating, "serving": ready, "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
    }
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        ep["nodeName"] = node
    return ep


def desired_slices(service: Mapping[str, Any], network: str, pods: Sequence[Mapping[str, Any]]) -> list[Obj]:
    """Every EndpointSlice the Service should have on `network`, with stable names."""
    meta, spec = service["metadata"], service.get("spec") or {}
    groups: dict[tuple[str, tuple[tuple[str, int, str], ...]], list[Obj]] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if not selects(spec.get("selector"), pod["metadata"].get("labels")):
            continue
        ports = resolve_ports(spec.get("ports") or [], pod)
        if ports is None:
            continue
        for address in pod_addresses(pod, network):
            family = "IPv6" if ":" in address else "IPv4"
            groups.setdefault((family, ports), []).append(_endpoint(pod, address))
    slices = []
    for (family, ports), endpoints in sorted(groups.items()):
        for i in range(0, len(endpoints), MAX_ENDPOINTS):
            slices.append(_slice(meta, network, family, ports, endpoints[i:i + MAX_ENDPOINTS], i // MAX_ENDPOINTS))
    return slices


def _slice(svc_meta: Mapping[str, Any], network: str, family: str, ports: tuple[tuple[str, int, str], ...],
           endpoints: list[Obj], chunk: int) -> Obj:
    key = json.dumps([network, family, ports, chunk]).encode()
    name = f"{svc_meta['name'][:50]}-mn-{hashlib.sha256(key).hexdigest()[:10]}"
    body: Obj = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": name, "namespace": svc_meta["namespace"],
            "labels": {MANAGED_BY_LABEL: names.ENDPOINTSLICE_MANAGED_BY, SERVICE_NAME_LABEL: svc_meta["name"],
                       **({names.ENDPOINTSLICE_NETWORK_LABEL: network} if len(network) <= 63 else {})},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": svc_meta["name"],
                                 "uid": svc_meta["uid"], "controller": True, "blockOwnerDeletion": True}],
        },
        "addressType": family,
        "endpoints": endpoints,
        "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    body["metadata"]["annotations"] = {HASH_ANNOTATION: digest}
    return body
