"""Services on a secondary network + their EndpointSlices -> service entries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.compile.objects import Obj, annotations_of, is_ipv4, labels, meta, network_of
from datapath.entries import ActionCall, Entry, Exact, Lpm, Range, Ternary, entry, ip
from datapath.pipeline import PROTOCOLS
from podnetwork import faults
from podnetwork.names import ENDPOINTSLICE_NETWORK_LABEL, SERVICE_VIP_ANNOTATION

SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # set on every EndpointSlice (discovery.k8s.io/v1)


def service_vip(service: Obj) -> str | None:
    vip = annotations_of(service).get(SERVICE_VIP_ANNOTATION) or (service.get("spec") or {}).get("clusterIP")
    return str(vip) if vip and is_ipv4(vip) else None


def _backends(slices: Iterable[Obj], port_name: str, protocol: str) -> list[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for s in slices:
        numbers = [p["port"] for p in s.get("ports") or ()
                   if (p.get("name") or "") == port_name and p.get("protocol", "TCP") == protocol and p.get("port")]
        for ep in s.get("endpoints") or ():
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            for address in ep.get("addresses") or ():
                if is_ipv4(address):
                    out.update((ip(address), int(n)) for n in numbers)
    return sorted(out)


def compile_services(services: Iterable[Obj], slices: Iterable[Obj], networks: Mapping[str, int]) -> list[Entry]:
    """One service entry per (Service port) with ready backends: (network, VIP, proto, port) -> group."""
    by_service: dict[tuple[str, str, str], list[Obj]] = {}
    for s in slices:
        key = (meta(s).get("namespace", ""), labels(s).get(SERVICE_NAME_LABEL, ""),
               labels(s).get(ENDPOINTSLICE_NETWORK_LABEL, ""))
        by_service.setdefault(key, []).append(s)
    out = []
    for svc in services:
        network, vip = network_of(svc), service_vip(svc)
        if network is None or network not in networks or vip is None:
            continue
        own = by_service.get((meta(svc).get("namespace", ""), meta(svc).get("name", ""), network), [])
        for port in (svc.get("spec") or {}).get("ports") or ():
            protocol = port.get("protocol", "TCP")
            backends = _backends(own, port.get("name") or "", protocol)
            if faults.on("service-single-backend"):
                backends = backends[:1]
            if not backends or protocol not in PROTOCOLS:
                continue
            match: dict[str, Exact | Lpm | Ternary | Range] = {"network_id": Exact(networks[network]), "vip": Exact(ip(vip)),
                     "proto": Exact(PROTOCOLS[protocol]), "port": Exact(int(port["port"]))}
            out.append(entry("service", match, *(ActionCall("dnat", b) for b in backends)))
    return out
