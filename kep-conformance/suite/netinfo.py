"""What a pod's network namespace holds, from `ip -j addr` and `ip -j route`
run inside the probe pod (iproute2's JSON output, as in the agnhost image)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class NetInfoError(ValueError):
    """The command's output is not iproute2 JSON."""


@dataclass(frozen=True)
class Interface:
    name: str
    up: bool
    mac: str
    # Addresses of global scope: IPv6 link-local addresses are the kernel's own,
    # not the implementation's, and no status lists them.
    addresses: frozenset[IPInterface]


@dataclass(frozen=True)
class Route:
    destination: str  # "default" or a CIDR
    device: str
    gateway: str | None


def _json_list(text: str, what: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise NetInfoError(f"{what}: not JSON ({err}): {text[:200]!r}") from err
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise NetInfoError(f"{what}: expected a JSON list of objects, got {text[:200]!r}")
    return data


def parse_addr(text: str) -> dict[str, Interface]:
    """Interfaces by name from `ip -j addr show`."""
    out = {}
    for link in _json_list(text, "ip -j addr"):
        name = str(link.get("ifname", ""))
        addresses = set()
        for info in link.get("addr_info") or []:
            if info.get("family") not in ("inet", "inet6") or info.get("scope") == "link":
                continue
            if info.get("scope") == "host":  # loopback
                continue
            addresses.add(ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}"))
        flags = link.get("flags") or []
        out[name] = Interface(name=name, up="UP" in flags and link.get("operstate") != "DOWN",
                              mac=str(link.get("address", "")), addresses=frozenset(addresses))
    return out


def parse_routes(text: str) -> list[Route]:
    """Routes of the main table from `ip -j route show` (either family)."""
    return [Route(destination=str(r.get("dst", "")), device=str(r.get("dev", "")),
                  gateway=str(r["gateway"]) if r.get("gateway") else None)
            for r in _json_list(text, "ip -j route")]


def default_route(routes: list[Route]) -> Route | None:
    for route in routes:
        if route.destination == "default":
            return route
    return None
