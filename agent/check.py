"""CHECK (spec 2): what an attachment made, compared with the kernel."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from agent import links
from agent.record import AttachmentRecord, Eth0Mode, PlannedInterface


def pod_side(netns: str, expected: Mapping[str, Any], record: AttachmentRecord) -> list[str]:
    """The pod's interfaces of `expected` (prevResult, or the recorded result)
    that this plugin made, and each secondary interface's routes."""
    # Only what this plugin made: a delegated eth0 is checked by its own
    # plugins, and an earlier plugin of the chain checks its own.
    ours = {p.name for p in record.plans} | ({record.ifname} if record.mode == Eth0Mode.ROUTED else set())
    problems: list[str] = []
    try:
        with links.rtnl(netns) as pod:
            for i, itf in enumerate(expected.get("interfaces", [])):
                if itf.get("sandbox") != netns or itf.get("name") not in ours:
                    continue
                addresses = [ip["address"] for ip in expected.get("ips", []) if ip.get("interface") == i]
                problems += link(pod, itf, addresses)
            for plan in record.plans:
                problems += routes(pod, plan)
    except links.NetnsGone:
        problems.append(f"CNI_NETNS {netns} does not exist")
    return problems


def representors(ipu_netns: str | None, record: AttachmentRecord) -> list[str]:
    problems = []
    for port in record.ports:
        with links.rtnl(ipu_netns) as ipu:
            state = links.link_state(ipu, port.representor)
        if state is None or not state.up:
            problems.append(f"representor {port.representor} of {port.interface} is missing or down")
    return problems


def link(pod: links.IPRoute, itf: Mapping[str, Any], addresses: Sequence[str]) -> list[str]:
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


def routes(pod: links.IPRoute, plan: PlannedInterface) -> list[str]:
    index = links.index_of(pod, plan.name)
    if index is None:
        return []  # reported as a missing interface already
    present = links.routes_via(pod, index)
    return [f"route to {dst} via {plan.name} is missing" for dst in plan.routes if dst not in present]
