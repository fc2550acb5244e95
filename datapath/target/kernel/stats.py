"""Reading the kernel's counters for `/metrics`: only counting objects, never a rule.

One netlink dump of the table's counter objects gives every named counter
(services `svc*_`, policy verdicts `pst_*`); one dump of each family's
`backends` map gives the service buckets' element counters, summed per
backend (nftobj.py). Going through nft instead would make it load the whole
table first (seconds at 10,000 Services).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

from datapath.target.kernel import nftobj
from datapath.target.kernel.context import FAMILIES, Family, KernelContext
from datapath.target.realizer import Counts

# (family version, network, VIP, protocol number, port, backend "address:port") -> new connections, bytes
BackendKey = tuple[int, int, str, int, int, str]


@dataclass
class KernelStats:
    counters: dict[str, Counts] = field(default_factory=dict)
    backends: dict[BackendKey, Counts] = field(default_factory=dict)


def read_stats(ctx: KernelContext) -> KernelStats:
    out = KernelStats(counters=nftobj.counters(ctx.table))
    for f in FAMILIES:
        out.backends.update(backend_counts(f, nftobj.element_counters(ctx.table, f"backends{f.suffix}")))
    return out


def backend_counts(f: Family, elements: Iterable[tuple[bytes, bytes, Counts]]) -> dict[BackendKey, Counts]:
    """The `backends` elements' counters summed per (service, backend).

    An element is mark . address . proto . port . bucket -> address . port,
    each field padded to 4 bytes (the kernel's register layout). The buckets
    are summed on the raw bytes first, then each service and each backend is
    decoded once: a read sees 100,000 elements."""
    a = f.width // 8
    summed: dict[tuple[bytes, bytes], Counts] = {}
    for key, data, (packets, octets) in elements:
        where = (key[: 12 + a], data[: a + 2])  # without the bucket; the backend without padding
        have = summed.get(where)
        summed[where] = (packets, octets) if have is None else (have[0] + packets, have[1] + octets)
    services: dict[bytes, tuple[int, int, str, int, int]] = {}
    backends: dict[bytes, str] = {}
    out: dict[BackendKey, Counts] = {}
    for (service, backend), counts in summed.items():
        s = services.get(service) or services.setdefault(service, _service(f, service))
        b = backends.get(backend) or backends.setdefault(backend, _backend(f, backend))
        out[(*s, b)] = counts
    return out


def mark(raw: bytes) -> int:
    """A mark in a key: host byte order, as the kernel's registers hold meta mark."""
    return int.from_bytes(raw[:4], sys.byteorder)


def _service(f: Family, key: bytes) -> tuple[int, int, str, int, int]:
    """mark . VIP . proto . port -> (family version, network, VIP, protocol number, port).
    inet_ntop, not ipaddress: it is the faster one."""
    a = f.width // 8
    vip = socket.inet_ntop(f.af, key[4 : 4 + a])
    return (f.version, mark(key), vip, key[4 + a], int.from_bytes(key[8 + a : 10 + a], "big"))


def _backend(f: Family, data: bytes) -> str:
    """address . port -> "address:port" ("[address]:port" for IPv6)."""
    a = f.width // 8
    address, port = socket.inet_ntop(f.af, data[:a]), int.from_bytes(data[a : a + 2], "big")
    return f"{address}:{port}" if f.version == 4 else f"[{address}]:{port}"
