"""Other nodes' pods -> tunnel routes (and, for address-less networks, head-end replication) on this node's IPU."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.compile.objects import Obj, is_ipv4, pod_addresses, running
from datapath.entries import ActionCall, Entry, Exact, entry, ip, prefix, version_of
from datapath.pipeline import family_table
from podnetwork.addresses import network_ids


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


def compile_floods(pods: Iterable[Obj], node_name: str, node_vteps: Mapping[str, str],
                   networks: Mapping[str, int]) -> list[Entry]:
    """Head-end replication for the layer 2 (address-less) networks this node
    has pods on: one `flood` entry per other node with pods on the same network."""
    nodes_of: dict[str, set[str]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or not running(pod):
            continue
        addressed = pod_addresses(pod)
        for network in network_ids((pod.get("metadata") or {}).get("annotations") or {}):
            if network in networks and network not in addressed:
                nodes_of.setdefault(network, set()).add(node)
    out = []
    for network, nodes in sorted(nodes_of.items()):
        if node_name not in nodes:
            continue
        for other in sorted(nodes - {node_name}):
            if other in node_vteps:
                out.append(entry("flood", {"network_id": Exact(networks[network]),
                                           "vtep": Exact(ip(node_vteps[other]))}, ActionCall("replicate")))
    return out
