"""Shaping what an ADD made into the CNI result and the pod's network-status.

The CNI result is built as the spec's plain document (section 5: interfaces,
ips with an index into interfaces, routes, dns) because that is what goes on
the wire; `cni.result.render_result` converts it to the negotiated version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.plan import InterfacePlan
from agent.record import AttachmentRecord, PodRef
from datapath.ports import NetworkId, PortAttachment
from podnetwork import faults
from podnetwork.names import DEFAULT_NETWORK
from podnetwork.status import InterfaceStatus

Result = dict[str, Any]


def empty_result() -> Result:
    return {"interfaces": [], "ips": [], "routes": [], "dns": {}}


def merge(result: Result, other: Mapping[str, Any]) -> None:
    """Append another plugin's result (a chain's prevResult, a delegate's ADD)."""
    offset = len(result["interfaces"])
    result["interfaces"] += list(other.get("interfaces", []))
    for ip in other.get("ips", []):
        entry = dict(ip)
        if "interface" in entry:
            entry["interface"] += offset
        result["ips"].append(entry)
    result["routes"] += list(other.get("routes", []))
    if other.get("dns"):
        result["dns"] = dict(other["dns"])


def add_secondary(result: Result, plan: InterfacePlan, sandbox: str) -> None:
    at = len(result["interfaces"])
    result["interfaces"].append({"name": plan.name, "mac": plan.mac, "mtu": plan.mtu, "sandbox": sandbox})
    for ip in plan.ips:
        entry: dict[str, Any] = {"address": str(ip), "interface": at}
        gateway = next((g for g in plan.gateways if g.version == ip.version), None)
        if gateway is not None:
            entry["gateway"] = str(gateway)
        result["ips"].append(entry)
    for route in plan.routes:
        doc = {"dst": str(route.dst)}
        if route.gateway is not None:
            doc["gw"] = str(route.gateway)
        result["routes"].append(doc)


def network_status(record: AttachmentRecord) -> tuple[InterfaceStatus, ...]:
    """The pod's network-status: eth0 (whoever made it) and each secondary interface."""
    out: list[InterfaceStatus] = []
    result = record.result or {}
    interfaces = result.get("interfaces", [])
    eth0 = next((i for i, itf in enumerate(interfaces)
                 if itf.get("name") == record.ifname and itf.get("sandbox")), None)
    if eth0 is not None:
        ips = [ip for ip in result.get("ips", []) if ip.get("interface") == eth0]
        out.append(InterfaceStatus(
            pod_network_name=DEFAULT_NETWORK, interface_name=record.ifname,
            ips=tuple(ip["address"] for ip in ips), mac=interfaces[eth0].get("mac", ""),
            gateways=tuple(ip["gateway"] for ip in ips if ip.get("gateway")),
            default=not any(p.default for p in record.plans),
        ))
    out += [InterfaceStatus(
        pod_network_name=p.network, interface_name=p.name, ips=p.ips, mac=p.mac,
        gateways=p.gateways, default=p.default, pod_network_attachment_name=p.attachment or "",
    ) for p in (record.plans[:-1] if faults.on("network-status-omits-attachment") else record.plans)]
    return tuple(out)


def port_of(pod: PodRef, p: InterfacePlan) -> PortAttachment:
    """A veth interface as the datapath takes it: the pod's port on its network."""
    return PortAttachment(
        pod_uid=pod.uid, namespace=pod.namespace, pod_name=pod.name, network=p.network,
        network_id=NetworkId(p.network_id), interface=p.name, representor=p.peer,
        ips=tuple(str(ip) for ip in p.ips), mac=p.mac, mtu=p.mtu,
        gateways=tuple(str(g) for g in p.gateways),  # the IPU answers for them (IPv6 neighbours too)
    )
