"""Pure logic: the interface plan from parsed allocations and NetworkParams
(the parsers themselves belong to, and are tested with, the API package)."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from agent.plan import link_group, link_name, params_key, plan_interfaces, stable_mac
from podnetwork.allocations import parse_allocations
from podnetwork.params import parse_params


def entry(**over: object) -> dict[str, Any]:
    base = {"podNetworkName": "n", "interfaceName": "net1", "networkId": 7, "ips": ["10.0.0.5/24"],
            "isDefaultGW4": False, "isDefaultGW6": False}
    base.update(over)
    return base


def test_plan_routes() -> None:
    allocations = parse_allocations(json.dumps([
        entry(interfaceName="net1", ips=["10.1.0.5/24", "fd01::5/64"], isDefaultGW4=True),
        entry(podNetworkName="l3", interfaceName="net2", ips=["10.2.3.4/32"]),
    ]))
    params = {
        "n/": parse_params({"topology": "L2", "ipv4": {"subnet": "10.1.0.0/24", "gateway": "10.1.0.1"},
                           "ipv6": {"subnet": "fd01::/64"}, "serviceCIDRs": ["10.96.1.0/24", "fd96::/112"]}),
        "l3/": parse_params({"topology": "L3", "mtu": 9000, "ipv4": {"subnet": "10.2.0.0/16", "gateway": "10.2.0.1"}}),
    }
    net1, net2 = plan_interfaces("c1", allocations, params, "mn-")
    assert [(str(r.dst), str(r.gateway)) for r in net1.routes] == [
        ("10.96.1.0/24", "10.1.0.1"), ("0.0.0.0/0", "10.1.0.1"), ("fd96::/112", "None")]
    assert [(str(r.dst), str(r.gateway)) for r in net2.routes] == [("10.2.0.0/16", "10.2.0.1")]
    assert net2.mtu == 9000 and net2.peer == link_name("mn-", "c1", "net2")
    with pytest.raises(ValueError, match="PodNetwork 'l3' has no NetworkParams"):
        plan_interfaces("c1", allocations, {"n/": params["n/"]}, "mn-")
    assert [params_key(a) for a in allocations] == ["n/", "l3/"]


def test_names_and_marks() -> None:
    mac = stable_mac("c1", "net1")
    first = int(mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01  # locally administered unicast
    assert mac == stable_mac("c1", "net1") != stable_mac("c2", "net1")
    assert len(link_name("mnc", "c" * 64, "net1")) == 15
    assert link_group("n", "c1", "eth0") != 0


@pytest.mark.parametrize("networks,wanted", [
    (None, False),
    ('[{"podNetworkName": "default"}]', False),
    ('[{"podNetworkName": "default"}, {"podNetworkName": "fronthaul"}]', True),
    ('[{"podNetworkAttachmentName": "att"}]', True),
    ("not json", True),
])
def test_when_allocations_must_come_first(networks: str | None, wanted: bool) -> None:
    from agent.kube import wants_secondary_networks

    assert wants_secondary_networks(networks) is wanted
