"""What a pod's interfaces should be: the interface plan. No I/O.

Inputs: the controller's allocations annotation (one entry per non-default
network, interface names resolved, addresses allocated) and each network's
NetworkParams, both parsed by the API package (`podnetwork.allocations`,
`podnetwork.params`), so the controller and the agent read them alike.

An address-less (layer 2) network is one whose allocation carries no
addresses: a PodNetwork without NetworkParams (a veth of the default MTU),
or NetworkParams without ipv4/ipv6 (their MTU and interface kind). Its
interface comes up with its MAC and MTU set and no address or route; the
datapath bridges it (see datapath/target/kernel/segments.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from podnetwork import faults
from podnetwork.allocations import Allocation
from podnetwork.params import MTU_DEFAULT, FamilyParams, NetworkParams

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def is_link_name(prefix: str, name: str) -> bool:
    """Whether `name` has the form link_name gives (prefix, then hex to 15 chars)."""
    rest = name[len(prefix):]
    return name.startswith(prefix) and len(name) == 15 and all(c in "0123456789abcdef" for c in rest)


def params_key(a: Allocation) -> str:
    """Which NetworkParams an allocation uses: its attachment's when it came
    through a PodNetworkAttachment (which may carry its own), else its network's."""
    return f"{a.pod_network_name}/{a.pod_network_attachment_name}"


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
    if p is None and not a.ips:
        return _layer2(container_id, a, prefix)
    if p is None:
        # Addresses were allocated from parameters this node cannot see (yet).
        raise ValueError(f"PodNetwork {a.pod_network_name!r} has no NetworkParams")
    ips = tuple(ipaddress.ip_interface(ip) for ip in a.ips)  # validated by the parser
    routes: list[Route] = []
    for family, default in ((p.ipv4, a.is_default_gw4), (p.ipv6, a.is_default_gw6)):
        if family is None or not any(ip.version == family.subnet.version for ip in ips):
            continue
        routes.extend(_family_routes(ips, family, p, default))
    return InterfacePlan(
        name=a.interface_name[:13] + "_x" if faults.on("wrong-interface-name") else a.interface_name,
        network=a.pod_network_name,
        attachment=a.pod_network_attachment_name or None,
        network_id=a.network_id,
        kind=p.interface_kind,
        peer=(p.uplink or "") if p.interface_kind == "macvlan" else link_name(prefix, container_id, a.interface_name),
        mac=stable_mac(container_id, a.interface_name),
        mtu=p.mtu,
        ips=ips,
        routes=tuple(routes),
        gateways=tuple(f.gateway for f in p.families() if f.gateway is not None),
        default_gw4=a.is_default_gw4,
        default_gw6=a.is_default_gw6,
    )


def _layer2(container_id: str, a: Allocation, prefix: str) -> InterfacePlan:
    """The interface on a network without NetworkParams: no addresses, the defaults."""
    return InterfacePlan(
        name=a.interface_name, network=a.pod_network_name, attachment=a.pod_network_attachment_name or None,
        network_id=a.network_id, kind="veth", peer=link_name(prefix, container_id, a.interface_name),
        mac=stable_mac(container_id, a.interface_name), mtu=MTU_DEFAULT, ips=(), routes=(), gateways=(),
        default_gw4=False, default_gw6=False,
    )


def _family_routes(
    ips: Sequence[IPInterface], family: FamilyParams, p: NetworkParams, default: bool
) -> list[Route]:
    out: list[Route] = []
    version = family.subnet.version
    # The address's own prefix gives a connected route; a narrower prefix
    # (an L3 network hands out /32 or /128) needs the subnet routed explicitly.
    if not any(ip.network.supernet_of(family.subnet) for ip in ips if ip.version == version):  # type: ignore[arg-type]
        out.append(Route(family.subnet, family.gateway))
    for cidr in p.service_cidrs:
        if cidr.version == version:
            out.append(Route(cidr, family.gateway))
    if default:
        out.append(Route(ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0"), family.gateway))
    return out
