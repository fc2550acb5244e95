"""The allocations annotation the controller writes before it lifts the scheduling gate.

The node agent imports `parse_allocations` and `resolve_interface_names` from
here, so both sides agree on the format and on interface naming.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from podnetwork.jsondoc import decode
from podnetwork.names import ALLOCATIONS_ANNOTATION
from podnetwork.networks import DEFAULT_INTERFACE, Network, interface_name_error
from podnetwork.params import NETWORK_ID_MAX, NETWORK_ID_MIN

# The interface name of the cluster default network inside a pod (kubelet's CNI_IFNAME).
PRIMARY_INTERFACE = DEFAULT_INTERFACE
SECONDARY_PREFIX = "net"

ALLOCATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["podNetworkName", "interfaceName", "networkId", "ips", "isDefaultGW4", "isDefaultGW6"],
    "properties": {
        "podNetworkName": {"type": "string", "minLength": 1},
        "podNetworkAttachmentName": {"type": "string", "minLength": 1},
        "interfaceName": {"type": "string", "minLength": 1, "maxLength": 15},
        "networkId": {"type": "integer", "minimum": NETWORK_ID_MIN, "maximum": NETWORK_ID_MAX},
        "ips": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
        "isDefaultGW4": {"type": "boolean"},
        "isDefaultGW6": {"type": "boolean"},
    },
}

ALLOCATIONS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": ALLOCATIONS_ANNOTATION,
    "type": "array",
    "items": ALLOCATION_SCHEMA,
}


@dataclass(frozen=True)
class Allocation:
    """One non-default network of a pod, resolved: interface, network id, addresses."""

    pod_network_name: str
    interface_name: str
    network_id: int
    ips: tuple[str, ...]  # "10.10.0.5/24": the address with its subnet's prefix length
    is_default_gw4: bool = False
    is_default_gw6: bool = False
    pod_network_attachment_name: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"podNetworkName": self.pod_network_name}
        if self.pod_network_attachment_name:
            out["podNetworkAttachmentName"] = self.pod_network_attachment_name
        out.update(interfaceName=self.interface_name, networkId=self.network_id, ips=list(self.ips),
                   isDefaultGW4=self.is_default_gw4, isDefaultGW6=self.is_default_gw6)
        return out


class AllocationsError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def resolve_interface_names(networks: tuple[Network, ...]) -> tuple[str, ...]:
    """Interface name per entry: the requested one, else eth0 for `default`, else
    net1, net2, ... skipping names that other entries request."""
    taken = {n.interface_name for n in networks if n.interface_name}
    names: list[str] = []
    counter = 0
    for net in networks:
        if net.interface_name:
            names.append(net.interface_name)
            continue
        if net.is_default and PRIMARY_INTERFACE not in taken:
            name = PRIMARY_INTERFACE
        else:
            counter += 1
            while f"{SECONDARY_PREFIX}{counter}" in taken:
                counter += 1
            name = f"{SECONDARY_PREFIX}{counter}"
        taken.add(name)
        names.append(name)
    return tuple(names)


def parse_allocations(text: str) -> tuple[Allocation, ...]:
    """Decode and validate the annotation; raise AllocationsError naming each bad field."""
    where = f"annotation {ALLOCATIONS_ANNOTATION}"
    raw, errors = decode(text, ALLOCATIONS_SCHEMA, where)
    if errors:
        raise AllocationsError(errors)
    allocations = tuple(_from_json(item) for item in raw)
    errors = [e for i, a in enumerate(allocations) for e in _semantic_errors(f"{where}[{i}]", a)]
    names = [a.interface_name for a in allocations]
    errors += [f"{where}: interface name {n!r} appears twice" for n in sorted(set(names)) if names.count(n) > 1]
    if errors:
        raise AllocationsError(errors)
    return allocations


def _from_json(item: dict[str, Any]) -> Allocation:
    return Allocation(
        pod_network_name=item["podNetworkName"],
        pod_network_attachment_name=item.get("podNetworkAttachmentName", ""),
        interface_name=item["interfaceName"],
        network_id=item["networkId"],
        ips=tuple(item["ips"]),
        is_default_gw4=item["isDefaultGW4"],
        is_default_gw6=item["isDefaultGW6"],
    )


def _semantic_errors(where: str, alloc: Allocation) -> list[str]:
    errors: list[str] = []
    why = interface_name_error(alloc.interface_name)
    if why:
        errors.append(f"{where}.interfaceName: {alloc.interface_name!r} {why}")
    versions: list[int] = []
    for j, ip in enumerate(alloc.ips):
        try:
            if "/" not in ip:
                raise ValueError(ip)
            versions.append(ipaddress.ip_interface(ip).version)
        except ValueError:
            errors.append(f"{where}.ips[{j}]: {ip!r} is not an address with prefix length")
    if len(set(versions)) != len(versions):
        errors.append(f"{where}.ips: at most one address per IP family")
    return errors


def encode_allocations(allocations: tuple[Allocation, ...]) -> str:
    return json.dumps([a.to_json() for a in allocations], separators=(",", ":"))
