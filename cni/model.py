"""What a pod's interfaces should be: parsed inputs and the interface plan. No I/O.

Inputs: the controller's allocations annotation (one entry per non-default
network, interface names resolved, addresses allocated) and each network's
NetworkParams. The parsers here are the agent's own until the API package
offers one (then this module keeps only the plan).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cni.spec import ifname_problem

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

INTERFACE_KINDS = ("veth", "macvlan")
DEFAULT_MTU = 1450


@dataclass(frozen=True)
class Allocation:
    """One entry of the allocations annotation."""

    pod_network: str
    attachment: str | None
    interface: str
    network_id: int
    ips: tuple[IPInterface, ...]
    default_gw4: bool = False
    default_gw6: bool = False


def parse_allocations(text: str) -> tuple[Allocation, ...]:
    """Parse the allocations annotation; ValueError names the bad field."""
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise ValueError(f"allocations: not JSON ({err})") from None
    if not isinstance(doc, list):
        raise ValueError("allocations: must be a JSON list")
    out = tuple(_allocation(i, item) for i, item in enumerate(doc))
    names = [a.interface for a in out]
    if len(set(names)) != len(names):
        raise ValueError(f"allocations: interface names repeat: {names}")
    return out


def _allocation(i: int, item: Any) -> Allocation:
    where = f"allocations[{i}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where}: must be an object")
    network = item.get("podNetworkName")
    if not isinstance(network, str) or not network:
        raise ValueError(f"{where}.podNetworkName: must be a non-empty string")
    interface = item.get("interfaceName")
    if not isinstance(interface, str) or ifname_problem(interface) or not interface:
        raise ValueError(f"{where}.interfaceName: {interface!r} is not a valid interface name")
    network_id = item.get("networkId")
    if isinstance(network_id, bool) or not isinstance(network_id, int) or network_id < 0:
        raise ValueError(f"{where}.networkId: must be a non-negative integer")
    ips = item.get("ips", [])
    if not isinstance(ips, list):
        raise ValueError(f"{where}.ips: must be a list of CIDR strings")
    attachment = item.get("podNetworkAttachmentName")
    return Allocation(
        pod_network=network,
        attachment=attachment if isinstance(attachment, str) and attachment else None,
        interface=interface,
        network_id=network_id,
        ips=tuple(_interface_address(f"{where}.ips[{j}]", ip) for j, ip in enumerate(ips)),
        default_gw4=item.get("isDefaultGW4") is True,
        default_gw6=item.get("isDefaultGW6") is True,
    )


def _interface_address(where: str, value: Any) -> IPInterface:
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"{where}: {value!r} must be an address in CIDR form")
    try:
        return ipaddress.ip_interface(value)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not an address in CIDR form") from None


@dataclass(frozen=True)
class Family:
    subnet: IPNetwork
    gateway: IPAddress | None


@dataclass(frozen=True)
class NetworkParams:
    """The provider parameters of one network (the NetworkParams spec)."""

    topology: str = "L2"
    ipv4: Family | None = None
    ipv6: Family | None = None
    mtu: int = DEFAULT_MTU
    network_id: int | None = None
    interface_kind: str = "veth"
    uplink: str | None = None
    service_cidrs: tuple[IPNetwork, ...] = ()


def parse_params(spec: Mapping[str, Any]) -> NetworkParams:
    """Parse a NetworkParams spec; ValueError names the bad field."""
    topology = spec.get("topology", "L2")
    if topology not in ("L2", "L3"):
        raise ValueError(f"spec.topology: {topology!r} must be L2 or L3")
    mtu = spec.get("mtu", DEFAULT_MTU)
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 576 <= mtu <= 9216:
        raise ValueError(f"spec.mtu: {mtu!r} must be an integer in [576, 9216]")
    kind = spec.get("interfaceKind", "veth")
    if kind not in INTERFACE_KINDS:
        raise ValueError(f"spec.interfaceKind: {kind!r} must be one of {', '.join(INTERFACE_KINDS)}")
    uplink = spec.get("uplink")
    if kind == "macvlan" and (not isinstance(uplink, str) or not uplink):
        raise ValueError("spec.uplink: required when interfaceKind is macvlan")
    services = spec.get("serviceCIDRs", [])
    if not isinstance(services, list):
        raise ValueError("spec.serviceCIDRs: must be a list of CIDRs")
    network_id = spec.get("networkId")
    return NetworkParams(
        topology=topology,
        ipv4=_family(spec, "ipv4", 4),
        ipv6=_family(spec, "ipv6", 6),
        mtu=mtu,
        network_id=network_id if isinstance(network_id, int) and not isinstance(network_id, bool) else None,
        interface_kind=kind,
        uplink=uplink if isinstance(uplink, str) else None,
        service_cidrs=tuple(_network(f"spec.serviceCIDRs[{i}]", s) for i, s in enumerate(services)),
    )


def _family(spec: Mapping[str, Any], key: str, version: int) -> Family | None:
    raw = spec.get(key)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError(f"spec.{key}: must be an object")
    subnet = _network(f"spec.{key}.subnet", raw.get("subnet"))
    if subnet.version != version:
        raise ValueError(f"spec.{key}.subnet: {subnet} is not IPv{version}")
    gateway = raw.get("gateway")
    if gateway is None:
        return Family(subnet, None)
    try:
        address = ipaddress.ip_address(gateway)
    except ValueError:
        raise ValueError(f"spec.{key}.gateway: {gateway!r} is not an address") from None
    if address not in subnet:
        raise ValueError(f"spec.{key}.gateway: {address} is outside {subnet}")
    return Family(subnet, address)


def _network(where: str, value: Any) -> IPNetwork:
    try:
        return ipaddress.ip_network(value, strict=False)
    except (ValueError, TypeError):
        raise ValueError(f"{where}: {value!r} is not a CIDR") from None


# --- the plan ---------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    dst: IPNetwork
    gateway: IPAddress | None  # None: on-link through the interface


@dataclass(frozen=True)
class InterfacePlan:
    """One secondary interface to create in the pod."""

    name: str
    network: str
    attachment: str | None
    network_id: int
    kind: str  # veth | macvlan
    peer: str  # veth: representor name in the IPU namespace; macvlan: uplink
    mac: str
    mtu: int
    ips: tuple[IPInterface, ...]
    routes: tuple[Route, ...]
    gateways: tuple[IPAddress, ...]
    default_gw4: bool
    default_gw6: bool


def stable_mac(container_id: str, ifname: str) -> str:
    """A locally administered unicast MAC that survives re-ADD of the same attachment."""
    digest = hashlib.sha256(f"{container_id}/{ifname}".encode()).digest()
    first = (digest[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in (first, *digest[1:6]))


def link_group(network: str, container_id: str, ifname: str) -> int:
    """The link group (IFLA_GROUP) of one attachment's pod-side links: its
    owner mark, and what lets DEL remove them all in one kernel batch (one
    RCU grace period instead of one per link). Never 0, the default group."""
    digest = hashlib.sha256(f"{network}/{container_id}/{ifname}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 0x7FFFFFFE + 1


def link_name(prefix: str, container_id: str, ifname: str) -> str:
    """A node-side link name (<= 15 chars) owned by one attachment interface."""
    digest = hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()
    return prefix + digest[: 15 - len(prefix)]


def params_key(a: Allocation) -> str:
    """Which NetworkParams an allocation uses: its attachment's when it came
    through a PodNetworkAttachment (which may carry its own), else its network's."""
    return f"{a.pod_network}/{a.attachment or ''}"


def plan_interfaces(
    container_id: str,
    allocations: Sequence[Allocation],
    params: Mapping[str, NetworkParams],
    link_prefix: str,
) -> tuple[InterfacePlan, ...]:
    """The secondary interfaces of a pod; ValueError names what is missing."""
    return tuple(
        _plan_one(container_id, a, params, link_prefix) for a in allocations
    )


def _plan_one(
    container_id: str, a: Allocation, params: Mapping[str, NetworkParams], prefix: str
) -> InterfacePlan:
    p = params.get(params_key(a))
    if p is None:
        raise ValueError(f"PodNetwork {a.pod_network!r} has no NetworkParams")
    routes: list[Route] = []
    for family, default in ((p.ipv4, a.default_gw4), (p.ipv6, a.default_gw6)):
        if family is None or not any(ip.version == family.subnet.version for ip in a.ips):
            continue
        routes.extend(_family_routes(a, family, p, default))
    return InterfacePlan(
        name=a.interface,
        network=a.pod_network,
        attachment=a.attachment,
        network_id=a.network_id,
        kind=p.interface_kind,
        peer=(p.uplink or "") if p.interface_kind == "macvlan" else link_name(prefix, container_id, a.interface),
        mac=stable_mac(container_id, a.interface),
        mtu=p.mtu,
        ips=a.ips,
        routes=tuple(routes),
        gateways=tuple(f.gateway for f in (p.ipv4, p.ipv6) if f is not None and f.gateway is not None),
        default_gw4=a.default_gw4,
        default_gw6=a.default_gw6,
    )


def _family_routes(a: Allocation, family: Family, p: NetworkParams, default: bool) -> list[Route]:
    out: list[Route] = []
    # The address's own prefix gives a connected route; a narrower prefix
    # (an L3 network hands out /32 or /128) needs the subnet routed explicitly.
    if not any(ip.network.supernet_of(family.subnet) for ip in a.ips if ip.version == family.subnet.version):  # type: ignore[arg-type]
        out.append(Route(family.subnet, family.gateway))
    for cidr in p.service_cidrs:
        if cidr.version == family.subnet.version:
            out.append(Route(cidr, family.gateway))
    if default:
        any_net = ipaddress.ip_network("0.0.0.0/0" if family.subnet.version == 4 else "::/0")
        out.append(Route(any_net, family.gateway))
    return out
