"""Address-less (layer 2) networks: the agent's plan and the datapath's bridging.

The plan gives an interface its MAC and MTU and no address; the IPU bridges
such ports with the network's VXLAN device and replicates floods to the
other nodes of the segment, so pods reach each other at layer 2 across
nodes: IPv6 link-local addresses, which need nothing of an IPAM, prove it.
"""

from __future__ import annotations

from typing import Any

import pytest

from agent.compile import compile_floods
from agent.plan import plan_interfaces
from datapath.client.p4rt import WriteError
from datapath.entries import ActionCall, Exact, entry, prefix
from podnetwork.allocations import Allocation, encode_allocations
from podnetwork.names import ALLOCATIONS_ANNOTATION
from podnetwork.params import MTU_DEFAULT, NetworkParams
from tests.datapath.conftest import Env, netns
from tests.support.testbed import Pod
from tests.support.testbed_traffic import UdpServer, link_local, udp_ask_link_local

NET, NET_ID = "fronthaul", 300


def test_a_network_without_params_or_families_plans_an_interface_without_addresses() -> None:
    bare = Allocation(NET, "net1", NET_ID, ())
    (plan,) = plan_interfaces("c1", [bare], {}, "mn")
    assert (plan.ips, plan.routes, plan.kind, plan.mtu) == ((), (), "veth", MTU_DEFAULT)
    assert plan.mac == plan_interfaces("c1", [bare], {}, "mn")[0].mac  # stable across re-ADD
    no_families = NetworkParams("L2", None, None, 9000, NET_ID, "veth", None, ())
    (plan,) = plan_interfaces("c1", [bare], {f"{NET}/": no_families}, "mn")
    assert (plan.ips, plan.routes, plan.mtu) == ((), (), 9000)
    # Addresses without the parameters they came from cannot be planned.
    with pytest.raises(ValueError, match="no NetworkParams"):
        plan_interfaces("c1", [Allocation(NET, "net1", NET_ID, ("10.1.0.2/24",))], {}, "mn")


def obj(pod: Pod) -> dict[str, Any]:
    return {"metadata": {"name": pod.name, "namespace": "ran", "annotations": {
        ALLOCATIONS_ANNOTATION: encode_allocations((Allocation(NET, "net1", NET_ID, ()),))}},
        "spec": {"nodeName": pod.node.name}, "status": {"phase": "Running"}}


@netns
def test_pods_of_an_address_less_network_reach_each_other_at_layer_2_across_nodes(two_nodes: Env) -> None:
    env = two_nodes
    du1, du2, cu = (env.pod(node, name, NET_ID, (), mtu=MTU_DEFAULT)
                    for node, name in (("n1", "du1"), ("n2", "du2"), ("n1", "cu")))
    vteps = {name: node.vtep for name, node in env.testbed.nodes.items()}
    objs = [obj(p) for p in (du1, du2, cu)]
    for node, dp in env.datapaths.items():
        floods = compile_floods(objs, node, vteps, {NET: NET_ID})
        assert [e.get("vtep") for e in floods] == [Exact(int.from_bytes(bytes(map(int, v.split("."))), "big"))
                                                  for n, v in vteps.items() if n != node]
        dp.replace_state(floods)
    servers = [UdpServer(p.netns, 7000, p.name) for p in (du1, du2, cu)]
    try:
        du2_ll, cu_ll, du1_ll = (link_local(p.netns, "net1") for p in (du2, cu, du1))
        assert udp_ask_link_local(du1.netns, du2_ll, "net1", 7000) == "du2"  # across nodes
        assert udp_ask_link_local(du2.netns, du1_ll, "net1", 7000) == "du1"
        assert udp_ask_link_local(du1.netns, cu_ll, "net1", 7000) == "cu"  # same node, through the bridge
        # Without head-end replication the first solicitation never reaches the other node.
        env.datapaths["n1"].replace_state([])
        env.datapaths["n2"].replace_state([])
        for p in (du1, du2):
            env.testbed.flush_neighbours(p.netns, "net1")
        assert udp_ask_link_local(du1.netns, du2_ll, "net1", 7000, timeout=1) is None
    finally:
        for s in servers:
            s.close()
    # The network is bridged on this node: it cannot be routed as well.
    route = entry("route", {"network_id": Exact(NET_ID), "dst": prefix("10.9.0.1/32")}, ActionCall("to_port", (du1.attachment.representor,)))
    with pytest.raises(WriteError, match="FAILED_PRECONDITION"):
        env.datapaths["n1"].replace_state([route])
