"""A pod's addresses per network: the one rule every part uses.

What is attached (the agent's network-status) wins; before the agent has
written it, the controller's allocations say what the pod will have. A
malformed annotation counts as absent (admission and the writers validate
them; a reader never guesses). Addresses come without prefix length, in
annotation order, every family: a caller that handles only one family
filters, and says why.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from podnetwork.allocations import AllocationsError, parse_allocations
from podnetwork.names import ALLOCATIONS_ANNOTATION, NETWORK_STATUS_ANNOTATION
from podnetwork.status import NetworkStatusError, parse_network_status


def addresses_by_network(annotations: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Network name -> the pod's addresses on it."""
    entries: list[tuple[str, tuple[str, ...]]] = []
    if text := annotations.get(NETWORK_STATUS_ANNOTATION):
        try:
            entries = [(s.pod_network_name, s.ips) for s in parse_network_status(text)]
        except NetworkStatusError:
            entries = []
    if not entries and (text := annotations.get(ALLOCATIONS_ANNOTATION)):
        try:
            entries = [(a.pod_network_name, a.ips) for a in parse_allocations(text)]
        except AllocationsError:
            entries = []
    out: dict[str, tuple[str, ...]] = {}
    for network, ips in entries:
        found = tuple(a for a in (_address(ip) for ip in ips) if a is not None)
        out[network] = out.get(network, ()) + found
    return out


def addresses_on(annotations: Mapping[str, str], network: str) -> tuple[str, ...]:
    return addresses_by_network(annotations).get(network, ())


def network_ids(annotations: Mapping[str, str]) -> dict[str, int]:
    """Network name -> id (VNI), from the controller's allocations."""
    try:
        return {a.pod_network_name: a.network_id
                for a in parse_allocations(annotations.get(ALLOCATIONS_ANNOTATION) or "[]")}
    except AllocationsError:
        return {}


def _address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_interface(text).ip)
    except ValueError:
        return None
