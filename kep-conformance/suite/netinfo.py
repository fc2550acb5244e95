"""What a pod's network namespace holds, from `ip -j addr` and `ip -j route`
run inside the probe pod (iproute2's JSON, as in the stock agnhost image), or
from the plain `ip addr` / `ip route` text where the image's `ip` is
BusyBox's, which has no JSON output."""

from __future__ import annotations

import ipaddress
import json
import re
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


LINK_LINE = re.compile(r"^\d+:\s+([^:@\s]+)(?:@\S+)?:\s+<([^>]*)>(.*)$")


def parse_addr_text(text: str) -> dict[str, Interface]:
    """Interfaces by name from the text of `ip addr show` (iproute2 or BusyBox)."""
    links: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        head = LINK_LINE.match(line)
        if head:
            state = re.search(r"\bstate (\S+)", head.group(3))
            current = links.setdefault(head.group(1), {"flags": head.group(2).split(","), "addresses": set(),
                                                       "state": state.group(1) if state else "", "mac": ""})
            continue
        words = line.split()
        if current is None or not words:
            continue
        if words[0].startswith("link/") and len(words) > 1:
            current["mac"] = words[1]
        elif words[0] in ("inet", "inet6") and len(words) > 1:
            scope = words[words.index("scope") + 1] if "scope" in words[:-1] else "global"
            if scope not in ("link", "host"):
                current["addresses"].add(ipaddress.ip_interface(words[1]))
    if not links:
        raise NetInfoError(f"ip addr: no interface in {text[:200]!r}")
    return {name: Interface(name=name, up="UP" in v["flags"] and v["state"] != "DOWN", mac=v["mac"],
                            addresses=frozenset(v["addresses"])) for name, v in links.items()}


def parse_routes_text(text: str) -> list[Route]:
    """Routes from the text of `ip route show`: "default via GW dev IF ..." or "CIDR dev IF ..."."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if not words or "dev" not in words[:-1]:
            continue
        gateway = words[words.index("via") + 1] if "via" in words[:-1] else None
        out.append(Route(destination=words[0], device=words[words.index("dev") + 1], gateway=gateway))
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
