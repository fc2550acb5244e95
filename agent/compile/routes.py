"""Other nodes' pods -> tunnel routes (and, for address-less networks, head-end replication) on this node's IPU."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.compile.facts import PodFacts, pod_facts
from agent.compile.objects import Obj, is_ipv4
from datapath.entries import ActionCall, Entry, Exact, entry, ip, prefix, version_of
from datapath.pipeline import family_table


def compile_remote_routes(pods: Iterable[Obj], node_name: str, node_vteps: Mapping[str, str],
                          networks: Mapping[str, int]) -> list[Entry]:
    """A host route (/32, /128) through the network's tunnel for every address of a pod on another node;
    IPv6 rides the IPv4 underlay, so both point at the node's IPv4 VTEP. Two pods claiming one
    address: the first in key order wins."""
    out: dict[object, Entry] = {}
    for facts in sorted((pod_facts(p) for p in pods), key=lambda f: f.key):
        for e in pod_routes(facts, node_name, node_vteps, networks):
            out.setdefault(e.key, e)
    return list(out.values())


def pod_routes(pod: PodFacts, node_name: str, node_vteps: Mapping[str, str],
               networks: Mapping[str, int]) -> list[Entry]:
    """One pod's host routes on `node_name`'s IPU (none for a pod of this node)."""
    if not pod.node or pod.node == node_name or pod.node not in node_vteps or not pod.running:
        return []
    vtep = ip(node_vteps[pod.node])
    out = []
    for network, addresses in pod.addresses.items():
        if network not in networks:
            continue
        for address in addresses:
            out.append(entry(family_table("route", version_of(address)),
                             {"network_id": Exact(networks[network]), "dst": prefix(address)},
                             ActionCall("to_tunnel", (vtep,))))
    return out


def node_vteps(nodes: Iterable[Obj]) -> dict[str, str]:
    """Each Node's underlay address: its first IPv4 InternalIP."""
    out = {}
    for node in nodes:
        if (address := node_vtep(node)) is not None:
            out[(node.get("metadata") or {}).get("name", "")] = address
    return out


def node_vtep(node: Obj) -> str | None:
    for address in (node.get("status") or {}).get("addresses") or ():
        if address.get("type") == "InternalIP" and is_ipv4(address.get("address", "")):
            return str(address["address"])
    return None


def compile_floods(pods: Iterable[Obj], node_name: str, node_vteps: Mapping[str, str],
                   networks: Mapping[str, int]) -> list[Entry]:
    """Head-end replication for the layer 2 (address-less) networks this node
    has pods on: one `flood` entry per other node with pods on the same network."""
    nodes_of: dict[str, set[str]] = {}
    for pod in pods:
        for network, node in layer2_presence(pod_facts(pod)):
            nodes_of.setdefault(network, set()).add(node)
    return flood_entries(nodes_of, node_name, node_vteps, networks)


def layer2_presence(pod: PodFacts) -> set[tuple[str, str]]:
    """(address-less network, node) pairs the pod puts its node on."""
    if not pod.node or not pod.running:
        return set()
    return {(network, pod.node) for network in pod.layer2()}


def flood_entries(nodes_of: Mapping[str, Iterable[str]], node_name: str, node_vteps: Mapping[str, str],
                  networks: Mapping[str, int]) -> list[Entry]:
    """`nodes_of`: each address-less network's nodes with pods on it. Nodes sharing
    an address (one VTEP) get one entry."""
    out: dict[object, Entry] = {}
    for network, nodes in sorted(nodes_of.items()):
        others = set(nodes)
        if network not in networks or node_name not in others:
            continue
        for other in sorted(others - {node_name}):
            if other in node_vteps:
                e = entry("flood", {"network_id": Exact(networks[network]), "vtep": Exact(ip(node_vteps[other]))},
                          ActionCall("replicate"))
                out.setdefault(e.key, e)
    return list(out.values())
