"""Other nodes' pods -> tunnel routes on this node's IPU."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.compile.objects import Obj, is_ipv4, pod_addresses, running
from datapath.entries import ActionCall, Entry, Exact, entry, ip, prefix, version_of
from datapath.pipeline import family_table


def compile_remote_routes(pods: Iterable[Obj], node_name: str, node_vteps: Mapping[str, str],
                          networks: Mapping[str, int]) -> list[Entry]:
    """A host route (/32, /128) through the network's tunnel for every address of a pod on another node;
    IPv6 rides the IPv4 underlay, so both point at the node's IPv4 VTEP."""
    out: dict[object, Entry] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or node == node_name or node not in node_vteps or not running(pod):
            continue
        for network, addresses in pod_addresses(pod).items():
            if network not in networks:
                continue
            for address in addresses:
                e = entry(family_table("route", version_of(address)),
                          {"network_id": Exact(networks[network]), "dst": prefix(address)},
                          ActionCall("to_tunnel", (ip(node_vteps[node]),)))
                out[e.key] = e
    return list(out.values())


def node_vteps(nodes: Iterable[Obj]) -> dict[str, str]:
    """Each Node's underlay address: its first IPv4 InternalIP."""
    out = {}
    for node in nodes:
        for address in (node.get("status") or {}).get("addresses") or ():
            if address.get("type") == "InternalIP" and is_ipv4(address.get("address", "")):
                out[(node.get("metadata") or {}).get("name", "")] = address["address"]
                break
    return out
