"""A pod's secondary interfaces, made from their plan."""

from __future__ import annotations

import os


from agent import links
from agent.plan import InterfacePlan

OWN_NETNS = "/proc/self/ns/net"


def create(plan: InterfacePlan, pod: links.IPRoute, pod_fd: int, group: int,
           ipu_netns: str | None, host_netns: str | None) -> None:
    """veth: the pod end and its representor in the IPU namespace (as a VF and
    its port representor on an IPU); macvlan: on the host's uplink."""
    if plan.kind == "veth":
        ipu_fd = links.open_netns(ipu_netns or OWN_NETNS)
        try:
            index = links.create_veth(pod, plan.name, plan.mac, plan.mtu, plan.peer, ipu_fd, group)
        finally:
            os.close(ipu_fd)
        with links.rtnl(ipu_netns) as ipu:
            links.set_up(ipu, plan.peer)
    else:
        with links.rtnl(host_netns) as host:
            links.create_macvlan(host, plan.peer, plan.name, plan.mac, plan.mtu, pod_fd, group)
        found = links.index_of(pod, plan.name)
        assert found is not None
        index = found
    links.set_up(pod, plan.name, index)
    links.add_addresses(pod, index, plan.ips)
    for route in plan.routes:
        # The default route replaces one an earlier plugin of a chain may
        # have set: isDefaultGW4/6 asks for it on this attachment.
        links.add_route(pod, index, route, onlink=route.gateway is not None, replace=route.dst.prefixlen == 0)
