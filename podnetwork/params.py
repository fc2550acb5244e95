"""The project's provider parameters (`NetworkParams`): parsing and validation.

The KEP leaves everything below the PodNetwork handle to implementations; this
is ours. The CRD schema refuses most bad input at the apiserver already; this
validation is the one the controller runs before it sets `ParamsReady`, and it
reports every error at once, each naming its field.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

Topology = Literal["L2", "L3"]
InterfaceKind = Literal["veth", "macvlan"]
Choice = TypeVar("Choice", bound=str)

TOPOLOGIES: tuple[Topology, ...] = ("L2", "L3")
INTERFACE_KINDS: tuple[InterfaceKind, ...] = ("veth", "macvlan")
MTU_MIN, MTU_MAX, MTU_DEFAULT = 576, 9216, 1450
NETWORK_ID_MIN, NETWORK_ID_MAX = 1, 16_777_215  # 24-bit VXLAN network identifier
MAX_EXCLUDES = 64
MAX_SERVICE_CIDRS = 8
UPLINK_MAX = 15  # IFNAMSIZ (16) less the terminating NUL


@dataclass(frozen=True)
class FamilyParams:
    subnet: IPNetwork
    gateway: IPAddress | None
    excludes: tuple[IPNetwork, ...]


@dataclass(frozen=True)
class NetworkParams:
    topology: Topology
    ipv4: FamilyParams | None
    ipv6: FamilyParams | None
    mtu: int
    network_id: int | None  # from spec; None means "allocate one"
    interface_kind: InterfaceKind
    uplink: str | None
    service_cidrs: tuple[IPNetwork, ...]

    def families(self) -> tuple[FamilyParams, ...]:
        return tuple(f for f in (self.ipv4, self.ipv6) if f is not None)

    @property
    def addressless(self) -> bool:
        """Neither IPv4 nor IPv6: pods attach at layer 2 only (no IPAM, policy or Services)."""
        return self.ipv4 is None and self.ipv6 is None


class ParamsError(ValueError):
    """Invalid NetworkParams; `errors` holds one message per bad field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _cidr(value: Any, field: str, version: int | None, errors: list[str]) -> IPNetwork | None:
    if not isinstance(value, str):
        errors.append(f"{field}: must be a CIDR string, got {value!r}")
        return None
    try:
        net = _ip_network(value)
    except ValueError as exc:
        errors.append(f"{field}: invalid CIDR {value!r} ({exc})")
        return None
    if version is not None and net.version != version:
        errors.append(f"{field}: {value!r} is not an IPv{version} CIDR")
        return None
    return net


# The CRD's isCIDR (Go's netip.ParsePrefix) takes address/length only, the length in
# decimal without a leading zero; ipaddress.ip_network also takes a bare address (as
# /32), a netmask or hostmask, "/024" and an IPv6 zone.
_PREFIX_LENGTH = re.compile(r"0|[1-9][0-9]*")


def _ip_network(text: str) -> IPNetwork:
    """A CIDR as the apiserver accepts it, with no host bits set; ValueError otherwise."""
    address, slash, length = text.partition("/")
    if not slash or not _PREFIX_LENGTH.fullmatch(length):
        raise ValueError("must be address/prefix-length, e.g. 10.0.0.0/24")
    if "%" in address:
        raise ValueError("IPv6 zones are not allowed")
    net = ipaddress.ip_network(text, strict=True)
    if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped is not None:
        raise ValueError("IPv4-mapped IPv6 addresses are not allowed")
    return net


def _present(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The fields set to a value. No field of the schema is nullable, so the apiserver
    drops a null one before defaulting and validation: null means absent."""
    return {key: value for key, value in raw.items() if value is not None}


def _family(raw: Any, field: str, version: int, errors: list[str]) -> FamilyParams | None:
    if not isinstance(raw, Mapping):
        errors.append(f"{field}: must be an object with subnet, gateway, excludes")
        return None
    raw, before = _present(raw), len(errors)
    subnet = _cidr(raw.get("subnet"), f"{field}.subnet", version, errors)
    gateway = _gateway(raw.get("gateway"), subnet, f"{field}.gateway", errors)
    excludes = _excludes(raw.get("excludes", []), subnet, f"{field}.excludes", version, errors)
    if subnet is None or len(errors) > before:
        return None
    return FamilyParams(subnet, gateway, excludes)


def _gateway(value: Any, subnet: IPNetwork | None, field: str, errors: list[str]) -> IPAddress | None:
    if value is None:
        return None
    try:
        gateway = _ip_address(value)
    except ValueError as exc:
        errors.append(f"{field}: invalid IP address {value!r} ({exc})")
        return None
    if subnet is not None and gateway not in subnet:
        errors.append(f"{field}: {value} is outside the subnet {subnet}")
    elif subnet is not None and gateway in _reserved(subnet):
        errors.append(f"{field}: {value} is the network or broadcast address of {subnet}")
    return gateway


def _ip_address(value: Any) -> IPAddress:
    """An address as the CRD's isIP (Go's netip.ParseAddr) accepts it; ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError("must be a string")  # ipaddress takes an int: 168427521 is 10.10.0.1
    if "%" in value:
        raise ValueError("IPv6 zones are not allowed")
    ip = ipaddress.ip_address(value)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        raise ValueError("IPv4-mapped IPv6 addresses are not allowed")
    return ip


def _reserved(subnet: IPNetwork) -> tuple[IPAddress, ...]:
    """What the IPAM never hands out besides the gateway (ipam.Pool): the IPv4 network and
    broadcast addresses, the IPv6 subnet-router anycast address (RFC 4291 2.6.1). IPv6 has
    no broadcast: its last address is an ordinary one."""
    if subnet.version == 4:
        return (subnet.network_address, subnet.broadcast_address)
    return (subnet.network_address,)


def _excludes(
    raw: Any, subnet: IPNetwork | None, field: str, version: int, errors: list[str]
) -> tuple[IPNetwork, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_EXCLUDES:
        errors.append(f"{field}: must be a list of at most {MAX_EXCLUDES} CIDRs")
        return ()
    nets: list[IPNetwork] = []
    for i, value in enumerate(raw):
        net = _cidr(value, f"{field}[{i}]", version, errors)
        if net is None:
            continue
        if subnet is not None and not _within(net, subnet):
            errors.append(f"{field}[{i}]: {net} is outside the subnet {subnet}")
            continue
        nets.append(net)
    return tuple(nets)


def _within(net: IPNetwork, subnet: IPNetwork) -> bool:
    """`subnet_of` over either family: networks of different families never nest."""
    if isinstance(net, ipaddress.IPv4Network) and isinstance(subnet, ipaddress.IPv4Network):
        return net.subnet_of(subnet)
    if isinstance(net, ipaddress.IPv6Network) and isinstance(subnet, ipaddress.IPv6Network):
        return net.subnet_of(subnet)
    return False


def _choice(raw: Mapping[str, Any], key: str, choices: tuple[Choice, ...], default: Choice | None,
            errors: list[str]) -> Choice:
    value = raw.get(key, default)
    for choice in choices:
        if value == choice:
            return choice
    errors.append(f"spec.{key}: must be one of {', '.join(choices)}, got {value!r}")
    return choices[0]


def _int_in(raw: Mapping[str, Any], key: str, low: int, high: int, default: int | None,
            errors: list[str]) -> int | None:
    value = raw.get(key, default)
    if value is None:
        return None
    # JSON has one number type: the apiserver takes 1500.0 as the integer 1500.
    number = int(value) if isinstance(value, float) and value.is_integer() else value
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        errors.append(f"spec.{key}: must be an integer in {low}..{high}, got {value!r}")
        return None
    return number


def parse_params(spec: Mapping[str, Any]) -> NetworkParams:
    """Parse and validate a NetworkParams spec; raise ParamsError listing every error."""
    errors: list[str] = []
    spec = _present(spec)
    topology = _choice(spec, "topology", TOPOLOGIES, None, errors)
    ipv4 = _family(spec["ipv4"], "spec.ipv4", 4, errors) if "ipv4" in spec else None
    ipv6 = _family(spec["ipv6"], "spec.ipv6", 6, errors) if "ipv6" in spec else None
    # Neither family: an address-less (layer 2) network. Nothing of it can be
    # routed or load-balanced, so L3 and a service range make no sense there.
    addressless = "ipv4" not in spec and "ipv6" not in spec
    if addressless and topology == "L3":
        errors.append("spec.topology: L3 routes addresses; a network without ipv4 or ipv6 is L2")
    mtu = _int_in(spec, "mtu", MTU_MIN, MTU_MAX, MTU_DEFAULT, errors)
    network_id = _int_in(spec, "networkId", NETWORK_ID_MIN, NETWORK_ID_MAX, None, errors)
    kind = _choice(spec, "interfaceKind", INTERFACE_KINDS, "veth", errors)
    uplink = _uplink(spec.get("uplink"), kind, errors)
    services = _service_cidrs(spec.get("serviceCIDRs", []), errors)
    if addressless and spec.get("serviceCIDRs"):
        errors.append("spec.serviceCIDRs: a network without ipv4 or ipv6 has no Services")
    if errors:
        raise ParamsError(errors)
    return NetworkParams(
        topology=topology,
        ipv4=ipv4, ipv6=ipv6, mtu=mtu or MTU_DEFAULT, network_id=network_id,
        interface_kind=kind,
        uplink=uplink, service_cidrs=services,
    )


def _uplink(value: Any, kind: str, errors: list[str]) -> str | None:
    if value is None:
        if kind == "macvlan":
            errors.append("spec.uplink: required when interfaceKind is macvlan")
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= UPLINK_MAX:
        errors.append(f"spec.uplink: must be a link name of 1..{UPLINK_MAX} characters, got {value!r}")
        return None
    return value


def _service_cidrs(raw: Any, errors: list[str]) -> tuple[IPNetwork, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_SERVICE_CIDRS:
        errors.append(f"spec.serviceCIDRs: must be a list of at most {MAX_SERVICE_CIDRS} CIDRs")
        return ()
    nets = (_cidr(v, f"spec.serviceCIDRs[{i}]", None, errors) for i, v in enumerate(raw))
    return tuple(n for n in nets if n is not None)
