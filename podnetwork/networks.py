"""The pod's networks annotation: the KEP's `Network` list, and its static validations.

A pod cannot carry a new `spec.networks` field outside the core API, so the
list travels in the annotation `NETWORKS_ANNOTATION`. `static_validate` is the
KEP-3698 "Static validations" section as one pure function; the admission
webhook, the controller and the node agent all call it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podnetwork.jsondoc import decode
from podnetwork.names import DEFAULT_NETWORK, NETWORKS_ANNOTATION

# Linux IFNAMSIZ is 16 including the terminating NUL.
IFNAME_MAX = 15
# The cluster default network's interface inside a pod (kubelet's CNI_IFNAME):
# the `default` entry may name no other, and no other entry may take it.
DEFAULT_INTERFACE = "eth0"

NETWORK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "podNetworkName": {"type": "string", "minLength": 1, "maxLength": 253},
        "podNetworkAttachmentName": {"type": "string", "minLength": 1, "maxLength": 253},
        "interfaceName": {"type": "string"},
        "isDefaultGW4": {"type": "boolean"},
        "isDefaultGW6": {"type": "boolean"},
    },
}

NETWORKS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": NETWORKS_ANNOTATION,
    "type": "array",
    "minItems": 1,
    "items": NETWORK_SCHEMA,
}


@dataclass(frozen=True)
class Network:
    """One entry of the KEP's Pod `networks` list."""

    pod_network_name: str = ""
    pod_network_attachment_name: str = ""
    interface_name: str = ""
    is_default_gw4: bool = False
    is_default_gw6: bool = False

    @property
    def is_default(self) -> bool:
        return self.pod_network_name == DEFAULT_NETWORK

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.pod_network_name:
            out["podNetworkName"] = self.pod_network_name
        if self.pod_network_attachment_name:
            out["podNetworkAttachmentName"] = self.pod_network_attachment_name
        if self.interface_name:
            out["interfaceName"] = self.interface_name
        if self.is_default_gw4:
            out["isDefaultGW4"] = True
        if self.is_default_gw6:
            out["isDefaultGW6"] = True
        return out


DEFAULT_NETWORKS: tuple[Network, ...] = (Network(pod_network_name=DEFAULT_NETWORK),)


class NetworksError(ValueError):
    """The networks annotation breaks a static validation; one message per error."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _where(i: int) -> str:
    return f"annotation {NETWORKS_ANNOTATION}[{i}]"


def parse_networks(text: str) -> tuple[Network, ...]:
    """Decode and schema-check the annotation value (no cross-entry rules)."""
    raw, errors = decode(text, NETWORKS_SCHEMA, f"annotation {NETWORKS_ANNOTATION}")
    if errors:
        raise NetworksError(errors)
    return tuple(
        Network(
            pod_network_name=item.get("podNetworkName", ""),
            pod_network_attachment_name=item.get("podNetworkAttachmentName", ""),
            interface_name=item.get("interfaceName", ""),
            is_default_gw4=item.get("isDefaultGW4", False),
            is_default_gw6=item.get("isDefaultGW6", False),
        )
        for item in raw
    )


def interface_name_error(name: str) -> str | None:
    """Why `name` is not a valid Linux interface name, or None if it is.

    The kernel's dev_valid_name(): 1..15 bytes (IFNAMSIZ counts bytes, so a
    multi-byte UTF-8 character counts for each of its bytes), not "." or "..",
    no '/', ':', whitespace or NUL.
    """
    size = len(name.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= IFNAME_MAX:
        return f"must be 1..{IFNAME_MAX} characters, got {len(name)}" + (
            f" ({size} bytes)" if size != len(name) else "")
    if name in (".", ".."):
        return f"must not be {name!r}"
    if "/" in name or ":" in name or "\0" in name or any(c.isspace() for c in name):
        return "must not contain '/', ':', whitespace or NUL"
    return None


def static_errors(networks: tuple[Network, ...], host_network: bool) -> list[str]:
    """Every KEP static-validation error of a pod's networks, each naming entry and field."""
    errors: list[str] = []
    if host_network and networks:
        errors.append(f"annotation {NETWORKS_ANNOTATION}: networks must not be set on a hostNetwork pod")
    seen_refs: dict[tuple[str, str], int] = {}
    seen_ifnames: dict[str, int] = {}
    gw4 = gw6 = None
    for i, net in enumerate(networks):
        errors.extend(_entry_errors(i, net))
        ref = ("podNetworkName", net.pod_network_name) if net.pod_network_name else (
            "podNetworkAttachmentName", net.pod_network_attachment_name)
        if ref[1] and ref in seen_refs:
            errors.append(f"{_where(i)}.{ref[0]}: {ref[1]!r} is already referenced by entry {seen_refs[ref]}")
        seen_refs.setdefault(ref, i)
        if net.interface_name and net.interface_name in seen_ifnames:
            errors.append(f"{_where(i)}.interfaceName: {net.interface_name!r} is already used by entry "
                          f"{seen_ifnames[net.interface_name]}")
        seen_ifnames.setdefault(net.interface_name, i)
        errors.extend(_default_interface_errors(i, net, networks))
        if net.is_default_gw4:
            if gw4 is not None:
                errors.append(f"{_where(i)}.isDefaultGW4: only one network may be the IPv4 default "
                              f"gateway, entry {gw4} already is")
            gw4 = i if gw4 is None else gw4
        if net.is_default_gw6:
            if gw6 is not None:
                errors.append(f"{_where(i)}.isDefaultGW6: only one network may be the IPv6 default "
                              f"gateway, entry {gw6} already is")
            gw6 = i if gw6 is None else gw6
    return errors


def _default_interface_errors(i: int, net: Network, networks: tuple[Network, ...]) -> list[str]:
    """The `default` network's interface is eth0 (or left unnamed, which means eth0);
    while the pod references `default`, no other entry may claim eth0."""
    if net.is_default:
        if net.interface_name and net.interface_name != DEFAULT_INTERFACE:
            return [f"{_where(i)}.interfaceName: the {DEFAULT_NETWORK!r} network's interface must be "
                    f"{DEFAULT_INTERFACE!r} or left unset, got {net.interface_name!r}"]
        return []
    if net.interface_name == DEFAULT_INTERFACE:
        owner = next((j for j, n in enumerate(networks) if n.is_default), None)
        # An explicit eth0 on `default` is caught by the uniqueness rule instead.
        if owner is not None and networks[owner].interface_name != DEFAULT_INTERFACE:
            return [f"{_where(i)}.interfaceName: {DEFAULT_INTERFACE!r} is the interface of the "
                    f"{DEFAULT_NETWORK!r} network (entry {owner})"]
    return []


def _entry_errors(i: int, net: Network) -> list[str]:
    errors: list[str] = []
    if bool(net.pod_network_name) == bool(net.pod_network_attachment_name):
        errors.append(f"{_where(i)}: exactly one of podNetworkName or podNetworkAttachmentName must be set")
    if net.interface_name:
        why = interface_name_error(net.interface_name)
        if why:
            errors.append(f"{_where(i)}.interfaceName: {net.interface_name!r} {why}")
    return errors


def attachment_network_errors(networks: tuple[Network, ...], resolved: Mapping[str, str]) -> list[str]:
    """KEP active validation: through attachments, each PodNetwork is still referenced once.

    `resolved` maps attachment name -> its spec.podNetworkName (for those that exist).
    """
    errors: list[str] = []
    seen: dict[str, int] = {}
    for i, net in enumerate(networks):
        name = net.pod_network_name or resolved.get(net.pod_network_attachment_name, "")
        if not name:
            continue
        if name in seen:
            errors.append(f"{_where(i)}: PodNetwork {name!r} is already referenced by entry {seen[name]}")
        seen.setdefault(name, i)
    return errors


def pod_networks(annotations: Mapping[str, str] | None, host_network: bool) -> tuple[Network, ...]:
    """The pod's networks, validated; the KEP auto-population when absent.

    Raises NetworksError listing every static-validation error.
    """
    text = (annotations or {}).get(NETWORKS_ANNOTATION)
    if text is None:
        return () if host_network else DEFAULT_NETWORKS
    networks = parse_networks(text)
    errors = static_errors(networks, host_network)
    if errors:
        raise NetworksError(errors)
    return networks


def encode_networks(networks: tuple[Network, ...]) -> str:
    return json.dumps([n.to_json() for n in networks], separators=(",", ":"))
