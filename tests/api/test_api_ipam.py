"""Pool arithmetic: reserved addresses, excludes, exhaustion, wrapping."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from podnetwork.ipam import Pool, allocation_name
from podnetwork.params import FamilyParams, IPAddress


def pool(subnet: str, gateway: str | None = None, *excludes: str) -> Pool:
    return Pool.from_family(FamilyParams(
        ipaddress.ip_network(subnet), ipaddress.ip_address(gateway) if gateway else None,
        tuple(ipaddress.ip_network(e) for e in excludes)))


def drain(p: Pool) -> list[str]:
    """Everything the pool hands out, claiming each answer before asking again."""
    used: set[IPAddress] = set()
    start = 0
    while (ip := p.first_free(used, start)) is not None:
        used.add(ip)
        start = int(ip) - int(p.subnet.network_address) + 1
    return sorted(str(u) for u in used)


def test_v4_reserves_network_broadcast_gateway_excludes() -> None:
    p = pool("10.0.0.0/29", "10.0.0.1", "10.0.0.4/31")
    assert drain(p) == ["10.0.0.2", "10.0.0.3", "10.0.0.6"]
    assert p.size() == 3


def test_v6_reserves_subnet_router_anycast_only() -> None:
    p = pool("fd00::/126")
    assert drain(p) == ["fd00::1", "fd00::2", "fd00::3"]


def test_exhausted_returns_none() -> None:
    p = pool("10.0.0.0/30", "10.0.0.1")
    assert p.first_free({ipaddress.ip_address("10.0.0.2")}) is None


def test_start_wraps_around() -> None:
    p = pool("10.0.0.0/29")
    used = {ipaddress.ip_address("10.0.0.6")}
    assert str(p.first_free(used, start=6)) == "10.0.0.1"


def test_large_v6_does_not_scan_forever() -> None:
    p = pool("fd00::/64")
    assert str(p.first_free(set(), start=1 << 40)) == str(ipaddress.ip_address("fd00::") + (1 << 40))


def test_is_assignable() -> None:
    p = pool("10.0.0.0/24", "10.0.0.1", "10.0.0.128/25")
    assert p.is_assignable(ipaddress.ip_address("10.0.0.2"))
    for bad in ("10.0.0.0", "10.0.0.1", "10.0.0.200", "10.0.1.1"):
        assert not p.is_assignable(ipaddress.ip_address(bad))


def test_allocation_names_unique_per_address() -> None:
    assert allocation_name("blue", ipaddress.ip_address("10.0.0.5")) == "blue.10.0.0.5"
    a = allocation_name("blue", ipaddress.ip_address("fd00::5"))
    b = allocation_name("blue", ipaddress.ip_address("fd00:0:0::5"))
    assert a == b and ":" not in a


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=24, max_value=30), st.integers(min_value=0, max_value=1023),
       st.integers(min_value=0, max_value=1023))
def test_drain_matches_size_and_never_hands_reserved(prefix: int, gw: int, ex: int) -> None:
    subnet = ipaddress.ip_network(f"10.1.0.0/{prefix}")
    gateway = subnet.network_address + 1 + gw % max(subnet.num_addresses - 2, 1)
    exclude = ipaddress.ip_network(f"{subnet.network_address + (ex % subnet.num_addresses)}/32")
    p = pool(str(subnet), str(gateway), str(exclude))
    got = drain(p)
    assert len(got) == p.size() == len(set(got))
    assert all(p.is_assignable(ipaddress.ip_address(ip)) for ip in got)
    assert str(gateway) not in got and str(exclude.network_address) not in got
