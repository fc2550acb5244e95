"""Services on a secondary network + their EndpointSlices -> service(6) entries.

A Service's VIPs on its network are the `service-vip` annotation, a
comma-separated list with at most one address per family (as
`spec.clusterIPs`), else `spec.clusterIPs`/`spec.clusterIP`. Which families
it serves follows `ipFamilyPolicy` and `ipFamilies` (core/v1 Service):
SingleStack serves the first family only (the first of `ipFamilies`, else
the first VIP's); PreferDualStack and RequireDualStack serve each family
that has a VIP, `ipFamilies`' first. Each family's VIP
balances over the endpoints of that family's EndpointSlices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent.compile.objects import Obj, annotations_of, by_key, labels, meta, network_of
from datapath.entries import ActionCall, Entry, Exact, Match, entry, ip, parse_ip
from datapath.pipeline import PROTOCOLS, family_table
from podnetwork import faults
from podnetwork.names import ENDPOINTSLICE_NETWORK_LABEL, SERVICE_VIP_ANNOTATION
from podnetwork.vips import first_per_family, parse_service_vips

SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # set on every EndpointSlice (discovery.k8s.io/v1)
_FAMILY = {"IPv4": 4, "IPv6": 6}


def service_vips(service: Obj) -> dict[int, str]:
    """The VIP per family (4, 6) the Service serves on its network."""
    spec: Mapping[str, Any] = service.get("spec") or {}
    text = annotations_of(service).get(SERVICE_VIP_ANNOTATION)
    by_family = first_per_family(parse_service_vips(text) if text else
                                 spec.get("clusterIPs") or [spec.get("clusterIP")])
    # ipFamilies orders the families; one it leaves out still counts: the apiserver
    # defaults it from the cluster's service ranges, not from the secondary network's.
    listed = [_FAMILY[f] for f in spec.get("ipFamilies") or () if f in _FAMILY and _FAMILY[f] in by_family]
    families = listed + [v for v in by_family if v not in listed]
    if spec.get("ipFamilyPolicy", "SingleStack") == "SingleStack":
        families = families[:1]
    return {v: by_family[v] for v in families if v in by_family}


def _backends(slices: Iterable[Obj], port_name: str, protocol: str, version: int) -> list[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for s in slices:
        numbers = [int(p["port"]) for p in s.get("ports") or ()
                   if (p.get("name") or "") == port_name and p.get("protocol", "TCP") == protocol and p.get("port")]
        for ep in s.get("endpoints") or ():
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            for address in ep.get("addresses") or ():
                try:
                    family, value = parse_ip(address)
                except ValueError:
                    continue  # not an address: no backend
                if family == version:
                    for n in numbers:
                        out.add((value, n))
    return sorted(out)


def slice_owner(endpoint_slice: Obj) -> tuple[str, str, str]:
    """(namespace, Service name, network) an EndpointSlice belongs to."""
    return (meta(endpoint_slice).get("namespace", ""), labels(endpoint_slice).get(SERVICE_NAME_LABEL, ""),
            labels(endpoint_slice).get(ENDPOINTSLICE_NETWORK_LABEL, ""))


def service_owner(service: Obj) -> tuple[str, str, str] | None:
    """The `slice_owner` of the Service's EndpointSlices; None off a secondary network."""
    network = network_of(service)
    return None if network is None else (meta(service).get("namespace", ""), meta(service).get("name", ""), network)


def compile_services(services: Iterable[Obj], slices: Iterable[Obj], networks: Mapping[str, int]) -> list[Entry]:
    """One entry per (Service port, family) with ready backends: (network, VIP, proto, port) -> group.
    Two Services claiming one (network, VIP, proto, port): the first in key order wins."""
    by_service: dict[tuple[str, str, str], list[Obj]] = {}
    for s in slices:
        by_service.setdefault(slice_owner(s), []).append(s)
    out: dict[object, Entry] = {}
    for svc in by_key(services):
        owner = service_owner(svc)
        for e in service_entries(svc, by_service.get(owner, []) if owner else [], networks):
            out.setdefault(e.key, e)
    return list(out.values())


def service_entries(svc: Obj, own: Iterable[Obj], networks: Mapping[str, int]) -> list[Entry]:
    """One Service's entries, from its own EndpointSlices (those of its `service_owner`)."""
    network = network_of(svc)
    if network is None or network not in networks:
        return []
    own = list(own)
    out = []
    for version, vip in sorted(service_vips(svc).items()):
        for port in (svc.get("spec") or {}).get("ports") or ():
            protocol = port.get("protocol", "TCP")
            backends = _backends(own, port.get("name") or "", protocol, version)
            if faults.on("service-single-backend"):
                backends = backends[:1]
            if not backends or protocol not in PROTOCOLS:
                continue
            match: dict[str, Match] = {"network_id": Exact(networks[network]), "vip": Exact(ip(vip)),
                                       "proto": Exact(PROTOCOLS[protocol]), "port": Exact(int(port["port"]))}
            action = "dnat" if version == 4 else "dnat6"
            out.append(entry(family_table("service", version), match, *(ActionCall(action, b) for b in backends)))
    return out
