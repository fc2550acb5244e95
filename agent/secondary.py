"""A pod's secondary interfaces: made from their plan, checked against it."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from typing import Any

from pyroute2 import IPRoute

from agent import links
from agent.plan import InterfacePlan
from agent.record import PlannedInterface

OWN_NETNS = "/proc/self/ns/net"


def create(plan: InterfacePlan, pod: IPRoute, pod_fd: int, group: int,
           ipu_netns: str | None, host_netns: str | None) -> None:
    """veth: the pod end and its representor in the IPU namespace (as a VF and
    its port representor on an IPU); macvlan: on the host's uplink."""
    if plan.kind == "veth":
        ipu_fd = links.open_netns(ipu_netns or OWN_NETNS)
        try:
            index = links.create_veth(pod, plan.name, plan.mac, plan.mtu, plan.peer, ipu_fd, group)
        finally:
            os.close(ipu_fd)
        with links.rtnl(ipu_netns) as ipu:
            links.set_up(ipu, plan.peer)
    else:
        with links.rtnl(host_netns) as host:
            links.create_macvlan(host, plan.peer, plan.name, plan.mac, plan.mtu, pod_fd, group)
        found = links.index_of(pod, plan.name)
        assert found is not None
        index = found
    links.set_up(pod, plan.name, index)
    links.add_addresses(pod, index, plan.ips)
    for route in plan.routes:
        # The default route replaces one an earlier plugin of a chain may
        # have set: isDefaultGW4/6 asks for it on this attachment.
        links.add_route(pod, index, route, onlink=route.gateway is not None, replace=route.dst.prefixlen == 0)


def check_link(pod: IPRoute, itf: Mapping[str, Any], addresses: Sequence[str]) -> list[str]:
    """An interface of the result against the kernel: present, up, MAC, MTU, addresses."""
    state = links.link_state(pod, itf["name"])
    if state is None:
        return [f"interface {itf['name']} is missing"]
    problems = []
    if itf.get("mac") and state.mac.lower() != str(itf["mac"]).lower():
        problems.append(f"interface {itf['name']} has MAC {state.mac}, expected {itf['mac']}")
    if itf.get("mtu") and state.mtu != itf["mtu"]:
        problems.append(f"interface {itf['name']} has MTU {state.mtu}, expected {itf['mtu']}")
    if not state.up:
        problems.append(f"interface {itf['name']} is down")
    for address in addresses:
        if str(ipaddress.ip_interface(address)) not in state.addresses:
            problems.append(f"interface {itf['name']} lacks address {address}")
    return problems


def check_routes(pod: IPRoute, plan: PlannedInterface) -> list[str]:
    index = links.index_of(pod, plan.name)
    if index is None:
        return []  # reported as a missing interface already
    present = links.routes_via(pod, index)
    return [f"route to {dst} via {plan.name} is missing" for dst in plan.routes if dst not in present]
