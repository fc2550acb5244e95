"""Address-pool arithmetic for cluster-wide IPAM. No I/O: the controller decides
which address to claim here and lets the apiserver arbitrate the claim."""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Container
from dataclasses import dataclass

from podnetwork.params import FamilyParams, IPAddress, IPNetwork


@dataclass(frozen=True)
class Pool:
    """The assignable addresses of one subnet, as integer offsets into the subnet.

    Reserved: the network address (IPv4 network / IPv6 subnet-router anycast),
    the IPv4 broadcast address, the gateway and every excluded range.
    """

    subnet: IPNetwork
    reserved: tuple[tuple[int, int], ...]  # sorted, merged [first, last] offset ranges

    @classmethod
    def from_family(cls, family: FamilyParams) -> Pool:
        subnet = family.subnet
        base = int(subnet.network_address)
        last = subnet.num_addresses - 1
        ranges = [(0, 0)]
        if subnet.version == 4 and last > 0:
            ranges.append((last, last))
        if family.gateway is not None:
            ranges.append((int(family.gateway) - base,) * 2)
        for net in family.excludes:
            start = int(net.network_address) - base
            ranges.append((start, start + net.num_addresses - 1))
        return cls(subnet, _merge(ranges))

    def size(self) -> int:
        """How many addresses can be handed out."""
        return self.subnet.num_addresses - sum(b - a + 1 for a, b in self.reserved)

    def is_assignable(self, ip: IPAddress) -> bool:
        if ip not in self.subnet:
            return False
        return not self._reserved_at(int(ip) - int(self.subnet.network_address))

    def _reserved_at(self, offset: int) -> tuple[int, int] | None:
        i = bisect.bisect_right(self.reserved, (offset, float("inf"))) - 1
        if i >= 0 and self.reserved[i][0] <= offset <= self.reserved[i][1]:
            return self.reserved[i]
        return None

    def first_free(self, used: Container[IPAddress], start: int = 0, limit: int = 1 << 16) -> IPAddress | None:
        """The first assignable address at or after offset `start` (wrapping) not in `used`.

        Looks at no more than `limit` candidates so an IPv6 /64 never spins;
        returns None when nothing was found (the pool is exhausted, for subnets
        smaller than `limit`).
        """
        total = self.subnet.num_addresses
        base = int(self.subnet.network_address)
        offset, seen = start % total, 0
        while seen < min(total, limit):
            span = self._reserved_at(offset)
            if span is not None:
                skip = span[1] - offset + 1
                seen += skip
                offset = (span[1] + 1) % total
                continue
            ip = ipaddress.ip_address(base + offset)
            if ip not in used:
                return ip
            seen += 1
            offset = (offset + 1) % total
        return None

    def with_prefix(self, ip: IPAddress) -> str:
        """The address as the pod will carry it: with the subnet's prefix length."""
        return f"{ip}/{self.subnet.prefixlen}"


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return tuple(merged)


def allocation_name(network: str, ip: IPAddress) -> str:
    """Object name of the claim on `ip` in `network`: unique per (network, address).

    IPv6 uses the exploded form so two spellings of one address map to one name.
    """
    text = ip.exploded.replace(":", "-") if ip.version == 6 else str(ip)
    return f"{network}.{text}"
