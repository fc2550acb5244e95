"""Agent-side compilation: Kubernetes objects (plain dicts) -> desired table entries.

Pure functions, no I/O: Services + EndpointSlices, NetworkPolicies + pods +
namespaces, and other nodes' pods become entries of the datapath pipeline.
"""

from cni.compile.objects import pod_addresses
from cni.compile.policy import compile_policies
from cni.compile.routes import compile_remote_routes
from cni.compile.services import compile_services

__all__ = ["compile_policies", "compile_remote_routes", "compile_services", "pod_addresses"]
