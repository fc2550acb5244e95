"""A pod's secondary interfaces, made from their plan.

All of a pod's interfaces are made in few batches, each one datagram (see
datapath.netlink): the macvlans from the host namespace, the veths from the IPU
namespace (the representor up, the pod end born in the pod), each with the
look-up of the pod end's index; then, in the pod, every link up with its
addresses and routes.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence

from agent import links
from agent.plan import InterfacePlan


def create(plans: Sequence[InterfacePlan], pod: links.PodNetns, group: int, sessions: links.Sessions,
           ipu_netns: str | None, host_netns: str | None) -> None:
    """veth: the pod end and its representor in the IPU namespace (as a VF and
    its port representor on an IPU); macvlan: on the host's uplink."""
    index: dict[str, int] = {}
    macvlans = [p for p in plans if p.kind == "macvlan"]
    veths = [p for p in plans if p.kind == "veth"]
    if macvlans:
        with sessions.of(host_netns) as host:
            index |= _create_macvlans(host, macvlans, pod, group)
    if veths:
        with sessions.of(ipu_netns) as ipu:
            made = ipu.batch()
            for plan in veths:
                made.new_veth(plan.peer, plan.name, pod.fd, plan.mtu, peer_mac=plan.mac, peer_group=group)
            representors = [made.get_link(plan.peer) for plan in veths]
            made.commit()
        index |= {plan.name: rep.peer_index for plan, rep in zip(veths, representors)}
    configured = pod.session.batch()
    for plan in plans:
        configured.set_up(index[plan.name])
        links.add_addresses(configured, index[plan.name], plan.ips)
        for route in plan.routes:
            # The default route replaces one an earlier plugin of a chain may
            # have set: isDefaultGW4/6 asks for it on this attachment.
            links.add_route(configured, index[plan.name], route, onlink=route.gateway is not None,
                            replace=route.dst.prefixlen == 0)
    configured.commit()


def _create_macvlans(host: links.Session, plans: Sequence[InterfacePlan], pod: links.PodNetns,
                     group: int) -> dict[str, int]:
    """macvlans (bridge mode) on their uplinks, born directly in the pod;
    returns their indexes there."""
    look = host.batch()
    uplinks = {plan.peer: look.get_link(plan.peer) for plan in plans}
    try:
        look.commit()
    except links.NetlinkBatchError as err:
        if err.errno in (errno.ENODEV, errno.ENOENT):
            raise LookupError(f"uplink does not exist: {err.strerror}") from None
        raise
    made = host.batch()
    for plan in plans:
        made.new_macvlan(plan.name, uplinks[plan.peer].index, plan.mac, plan.mtu, pod.fd, group)
    made.commit()
    found = pod.session.batch()
    replies: dict[str, links.LinkReply] = {plan.name: found.get_link(plan.name) for plan in plans}
    found.commit()
    return {name: reply.index for name, reply in replies.items()}
