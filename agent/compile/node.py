"""Everything one node's IPU needs beyond its own ports, in one call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.compile.objects import Obj
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
    return (compile_remote_routes(pod_list, node_name, vteps, networks)
            + compile_floods(pod_list, node_name, vteps, networks)
            + compile_services(services, slices, networks)
            + compile_policies(policies, pod_list, namespaces, networks, node_name=node_name))
