"""The allocations annotation format and interface-name resolution the agent relies on."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from podnetwork.allocations import (
    Allocation,
    AllocationsError,
    encode_allocations,
    parse_allocations,
    resolve_interface_names,
)
from podnetwork.networks import Network
from podnetwork.status import network_status_errors


def test_names_default_eth0_then_net_n() -> None:
    nets = (Network(pod_network_name="default"), Network(pod_network_name="a"),
            Network(pod_network_name="b"))
    assert resolve_interface_names(nets) == ("eth0", "net1", "net2")


def test_names_skip_requested_ones() -> None:
    nets = (Network(pod_network_name="a"), Network(pod_network_name="b", interface_name="net1"),
            Network(pod_network_name="c"), Network(pod_network_name="d", interface_name="net3"))
    assert resolve_interface_names(nets) == ("net2", "net1", "net4", "net3")


def test_default_network_gets_net_n_when_eth0_taken() -> None:
    nets = (Network(pod_network_name="default"), Network(pod_network_name="a", interface_name="eth0"))
    assert resolve_interface_names(nets) == ("net1", "eth0")


def sample() -> tuple[Allocation, ...]:
    return (
        Allocation("blue", "net1", 100, ("10.10.0.5/24", "fd00::5/64"), is_default_gw4=True),
        Allocation("red", "fast0", 7, ("10.20.0.9/16",), pod_network_attachment_name="fast"),
    )


def test_round_trip() -> None:
    assert parse_allocations(encode_allocations(sample())) == sample()


def test_attachment_name_only_when_set() -> None:
    raw = json.loads(encode_allocations(sample()))
    assert "podNetworkAttachmentName" not in raw[0] and raw[1]["podNetworkAttachmentName"] == "fast"


@pytest.mark.parametrize("mutate,needle", [
    (lambda r: r[0].pop("networkId"), "'networkId' is a required property"),
    (lambda r: r[0].update(networkId=0), "[0][networkId]: 0 is less than the minimum"),
    (lambda r: r[0].update(ips=["10.0.0.1"]), "[0].ips[0]: '10.0.0.1' is not an address with prefix"),
    (lambda r: r[0].update(ips=["10.0.0.1/24", "10.0.0.2/24"]), "[0].ips: at most one address per IP family"),
    (lambda r: r[1].update(interfaceName="net1"), "interface name 'net1' appears twice"),
    (lambda r: r[1].update(interfaceName="a b"), "[1].interfaceName: 'a b' must not contain"),
])
def test_invalid(mutate: Callable[[list[dict[str, Any]]], object], needle: str) -> None:
    raw = json.loads(encode_allocations(sample()))
    mutate(raw)
    with pytest.raises(AllocationsError) as exc:
        parse_allocations(json.dumps(raw))
    assert needle in str(exc.value)


def test_network_status_schema() -> None:
    good = [{"podNetworkName": "blue", "interfaceName": "net1", "ips": ["10.0.0.5/24"],
             "mac": "02:00:00:00:00:01", "gateways": ["10.0.0.1"], "default": False}]
    assert network_status_errors(json.dumps(good)) == []
    good[0]["mac"] = "zz"
    assert any("[0][mac]" in e for e in network_status_errors(json.dumps(good)))
