"""DefaultGatewaySelection: the KEP's isDefaultGW4 ("this PodNetwork will hold
the IPv4 Default Gateway inside the Pod").

Two pods on the same secondary network: the one that asks for the gateway has
its IPv4 default route on that network's interface (through an address of
the network, where the options file names its subnet); the control pod,
which does not ask, keeps its default route off that interface.

The asking pod is read over pods/exec and never through the pod proxy: with
its IPv4 default route on the secondary network, the apiserver's connection
to its default-network address may get no answer (the reply follows the new
default route unless the implementation keeps a route back on the default
network), and the KEP promises no such route.
"""

from __future__ import annotations

import ipaddress

import pytest
from kubernetes import client

from suite.kube import ready_nodes
from suite.netinfo import default_route
from suite.networks import Networks
from suite.pods import NetRequest
from suite.probes import ProbePods

pytestmark = pytest.mark.feature("DefaultGatewaySelection")


def test_is_default_gw4_moves_the_default_route(
    networks: Networks, probes: ProbePods, core: client.CoreV1Api, namespace: str,
) -> None:
    nodes = ready_nodes(core)
    if not nodes:
        pytest.skip("needs a Ready schedulable node to run the probe pods")
    template = networks.template("distinct", 0)
    net = networks.create(index=0)["metadata"]["name"]
    networks.ready(net)
    asks = probes.create(namespace, "gw", nodes[0], [NetRequest(net, interface="gw0", gw4=True)])
    control = probes.create(namespace, "nogw", nodes[-1], [NetRequest(net, interface="net1")])
    probes.started([asks])
    probes.ready([control])

    route = default_route(probes.routes(asks, 4, inside=True))
    assert route is not None, f"{asks.ref} has no IPv4 default route"
    assert route.device == "gw0", f"{asks.ref}: default route via {route.device}, expected gw0 (isDefaultGW4)"
    subnet = template.family_subnet(4)
    if subnet is not None and route.gateway:
        assert ipaddress.ip_address(route.gateway) in subnet, f"{asks.ref}: gateway {route.gateway} not in {subnet}"

    other = default_route(probes.routes(control, 4))
    assert other is None or other.device != "net1", \
        f"{control.ref} did not ask for the gateway, yet its default route is via net1"
