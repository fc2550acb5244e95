"""Everything one node's IPU needs beyond its own ports, in one call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.compile.objects import Obj, pod_addresses
from agent.compile.policy import compile_policies
from agent.compile.routes import compile_floods, compile_remote_routes, node_vteps
from agent.compile.services import compile_services
from datapath.entries import Entry


def compile_node(node_name: str, *, pods: Iterable[Obj], namespaces: Iterable[Obj], nodes: Iterable[Obj],
                 services: Iterable[Obj], slices: Iterable[Obj], policies: Iterable[Obj],
                 networks: Mapping[str, int]) -> list[Entry]:
    """Remote routes, services and policy for `node_name`; pass the result to
    `P4RuntimeDatapath.replace_state`, which writes only the difference."""
    pod_list = list(pods)
    vteps = node_vteps(nodes)
    routed = routed_networks(pod_list, networks)
    return (compile_remote_routes(pod_list, node_name, vteps, networks)
            + compile_floods(pod_list, node_name, vteps, networks)
            + compile_services(services, slices, routed)
            + compile_policies(policies, pod_list, namespaces, routed, node_name=node_name))


def routed_networks(pods: Iterable[Obj], networks: Mapping[str, int]) -> dict[str, int]:
    """The networks whose pods have addresses. An address-less (layer 2) network is
    bridged in the IPU, and a bridged network id cannot also be routed: a Service or
    policy on it would fail the whole batch. The controller tells the user so with an
    Event on the Service or NetworkPolicy; here they are left out."""
    addressed = {network for pod in pods for network, ips in pod_addresses(pod).items() if ips}
    return {name: net for name, net in networks.items() if name in addressed}
