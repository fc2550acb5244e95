"""NetworkParams validation: every error at once, each naming its field."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from podnetwork.params import MTU_DEFAULT, ParamsError, parse_params


def spec(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"topology": "L2", "ipv4": {"subnet": "10.10.0.0/24", "gateway": "10.10.0.1",
                                                       "excludes": ["10.10.0.0/28"]}}
    base.update(over)
    return base


def test_defaults() -> None:
    p = parse_params(spec())
    assert p.mtu == MTU_DEFAULT and p.interface_kind == "veth" and p.network_id is None
    assert p.ipv4 is not None and p.ipv4.gateway == ipaddress.ip_address("10.10.0.1")
    assert p.families() == (p.ipv4,)


@pytest.mark.parametrize("over,needle", [
    ({"topology": "L4"}, "spec.topology: must be one of L2, L3"),
    ({"ipv4": {"subnet": "10.10.0.0/33"}}, "spec.ipv4.subnet: invalid CIDR"),
    ({"ipv4": {"subnet": "10.10.0.5/24"}}, "spec.ipv4.subnet: invalid CIDR '10.10.0.5/24'"),
    ({"ipv4": {"subnet": "fd00::/64"}}, "spec.ipv4.subnet: 'fd00::/64' is not an IPv4 CIDR"),
    ({"ipv4": {"subnet": "10.10.0.0/24", "gateway": "10.11.0.1"}}, "spec.ipv4.gateway: 10.11.0.1 is outside"),
    ({"ipv4": {"subnet": "10.10.0.0/24", "gateway": "10.10.0.255"}}, "network or broadcast"),
    ({"ipv4": {"subnet": "10.10.0.0/24", "excludes": ["10.9.0.0/24"]}}, "spec.ipv4.excludes[0]: 10.9.0.0/24 is outside"),
    ({"mtu": 100}, "spec.mtu: must be an integer in 576..9216"),
    ({"networkId": 1 << 24}, "spec.networkId: must be an integer in 1..16777215"),
    ({"interfaceKind": "macvlan"}, "spec.uplink: required when interfaceKind is macvlan"),
    ({"serviceCIDRs": ["x"]}, "spec.serviceCIDRs[0]: invalid CIDR"),
])
def test_invalid(over: dict[str, Any], needle: str) -> None:
    with pytest.raises(ParamsError) as exc:
        parse_params(spec(**over))
    assert needle in str(exc.value)


def test_neither_family_is_an_address_less_l2_network() -> None:
    params = parse_params({"topology": "L2", "mtu": 9000})
    assert params.addressless and params.families() == () and params.mtu == 9000
    assert not parse_params(spec()).addressless
    with pytest.raises(ParamsError, match="spec.topology: L3 routes addresses"):
        parse_params({"topology": "L3"})
    with pytest.raises(ParamsError, match="spec.serviceCIDRs: a network without ipv4 or ipv6 has no Services"):
        parse_params({"topology": "L2", "serviceCIDRs": ["10.96.0.0/24"]})


def test_all_errors_reported() -> None:
    with pytest.raises(ParamsError) as exc:
        parse_params({"topology": "x", "mtu": 1, "networkId": 0, "ipv6": {"subnet": "10.0.0.0/8"}})
    assert len(exc.value.errors) == 4


def test_dual_stack() -> None:
    p = parse_params(spec(ipv6={"subnet": "fd00:10::/64"}, networkId=42, mtu=9000))
    assert len(p.families()) == 2 and p.network_id == 42 and p.mtu == 9000
