"""Agent-side compilation: Kubernetes objects (plain dicts) -> desired table entries.

Pure functions, no I/O: Services + EndpointSlices, NetworkPolicies + pods +
namespaces, and other nodes' pods become entries of the datapath pipeline.
"""

from agent.compile.incremental import NodeCompiler
from agent.compile.node import compile_node
from agent.compile.objects import network_ids, pod_addresses
from agent.compile.policy import compile_policies
from agent.compile.routes import compile_floods, compile_remote_routes, node_vteps
from agent.compile.services import compile_services

__all__ = ["NodeCompiler", "compile_floods", "compile_node", "compile_policies", "compile_remote_routes", "compile_services", "network_ids",
           "node_vteps", "pod_addresses"]
