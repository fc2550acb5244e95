"""Hairpin: a pod reaches itself through a VIP of its own Service.

Mechanism: after DNAT the packet would come back to the pod with its own
address as the source, which the pod's kernel drops as a martian. The IPU
rewrites the source of such a connection (source and destination both the
one local pod, after DNAT) to the VIP the pod asked for; conntrack undoes
both translations on the reply. Connections from other pods keep their
source.
"""

from __future__ import annotations

from typing import Any

from agent.compile import compile_services
from podnetwork.names import ENDPOINTSLICE_NETWORK_LABEL, POD_NETWORK_ANNOTATION, SERVICE_VIP_ANNOTATION
from tests.datapath.conftest import Env, netns
from tests.support.testbed_traffic import TcpServer, UdpServer, tcp_ask, udp_ask

VIP4, VIP6 = "10.96.5.20", "fd00:96::20"
RANGES = ("10.96.5.0/24", "fd00:96::/112")


def service() -> dict[str, Any]:
    return {"metadata": {"name": "self", "namespace": "prod", "annotations": {
        POD_NETWORK_ANNOTATION: "blue", SERVICE_VIP_ANNOTATION: f"{VIP4},{VIP6}"}},
        "spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"], "ports": [
            {"name": "web", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}


def slices(addresses: list[str]) -> list[dict[str, Any]]:
    return [{"metadata": {"namespace": "prod", "labels": {"kubernetes.io/service-name": "self",
                                                         ENDPOINTSLICE_NETWORK_LABEL: "blue"}},
             "ports": [{"name": "web", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 5353, "protocol": "UDP"}],
             "endpoints": [{"addresses": [a]} for a in addresses]}]


@netns
def test_a_pod_reaches_itself_through_its_service_vip_over_tcp_and_udp(two_nodes: Env) -> None:
    env = two_nodes
    a = env.pod("n1", "a", 100, ("10.1.0.1/24", "fd00:1::1/64"), extra_routes=RANGES)
    b = env.pod("n1", "b", 100, ("10.1.0.2/24", "fd00:1::2/64"), extra_routes=RANGES)
    entries = compile_services([service()], slices([a.ip, a.ip6]), {"blue": 100})
    assert len(entries) == 4  # TCP and UDP, each family
    env.datapaths["n1"].replace_state(entries)
    tcp, udp = TcpServer(a.netns, 8080, "a"), UdpServer(a.netns, 5353, "a")
    try:
        for vip in (VIP4, VIP6):
            assert tcp_ask(a.netns, vip, 80) == "a", vip
            assert tcp.peers[-1] == vip  # the pod saw its own connection come from the VIP
            assert udp_ask(a.netns, vip, 53) == ("a", vip), vip  # the reply comes from the VIP it asked
            assert udp.peers[-1] == vip
            # Another pod through the same VIP keeps its own source address.
            own = b.ip if vip == VIP4 else b.ip6
            assert tcp_ask(b.netns, vip, 80) == "a"
            assert tcp.peers[-1] == own
            assert udp_ask(b.netns, vip, 53) == ("a", vip)
            assert udp.peers[-1] == own
    finally:
        tcp.close()
        udp.close()
