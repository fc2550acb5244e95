"""AttachmentAddressing: addresses on a network are unique across its pods,
on both nodes, and stay unique as pods come and go (a freed address may be
reused, never one still held). Read from the status of Ready pods; where the
options file says which subnet a template hands out, every address is in it.
"""

from __future__ import annotations

import ipaddress

import pytest

from suite import status as status_mod
from suite.networks import Networks
from suite.pods import NetRequest
from suite.probes import ProbePod, ProbePods

pytestmark = pytest.mark.feature("AttachmentAddressing")

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def _held(probes: ProbePods, pods: list[ProbePod], net: str) -> dict[str, frozenset[IP]]:
    out = {}
    for pod in pods:
        attached = status_mod.on(probes.attachments(pod), net)
        assert attached.interface == "net1", f"{pod.ref}: the status names interface {attached.interface}, not net1"
        out[pod.name] = attached.addresses()
    return out


def _assert_unique(held: dict[str, frozenset[IP]], subnets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
    owners: dict[IP, str] = {}
    for pod, addresses in sorted(held.items()):
        assert addresses, f"{pod} has no address on the network"
        for ip in addresses:
            assert ip not in owners, f"{ip} is held by both {owners[ip]} and {pod}"
            owners[ip] = pod
            if subnets:
                assert any(ip in s for s in subnets if s.version == ip.version), f"{pod}: {ip} is outside {subnets}"


def test_addresses_are_unique_across_pods_and_churn(
    networks: Networks, probes: ProbePods, namespace: str, two_nodes: list[str],
) -> None:
    template = networks.template("distinct", 2)
    net = networks.create(index=2)["metadata"]["name"]
    networks.ready(net)

    def make(name: str, node: str) -> ProbePod:
        return probes.create(namespace, name, node, [NetRequest(net, interface="net1")])

    first = [make(f"p{i}", two_nodes[i % 2]) for i in range(4)]
    probes.started(first)
    before = _held(probes, first, net)
    _assert_unique(before, list(template.subnets))
    for pod in first[:2]:
        probes.delete(pod)
    later = [make(f"q{i}", two_nodes[i % 2]) for i in range(2)]
    probes.started(later)
    live = first[2:] + later
    after = _held(probes, live, net)
    _assert_unique(after, list(template.subnets))
    for pod in first[2:]:
        assert after[pod.name] == before[pod.name], f"{pod.name}'s address changed while it ran"
