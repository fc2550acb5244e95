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
        for key, data, counts in nftobj.element_counters(ctx.table, f"backends{f.suffix}"):
            k = backend_key(f, key, data)
            have = out.backends.get(k, (0, 0))
            out.backends[k] = (have[0] + counts[0], have[1] + counts[1])
    return out


def mark(raw: bytes) -> int:
    """A mark in a key: host byte order, as the kernel's registers hold meta mark."""
    return int.from_bytes(raw[:4], sys.byteorder)


def backend_key(f: Family, key: bytes, data: bytes) -> BackendKey:
    """Decode a `backends` element: mark . address . proto . port . bucket -> address . port,
    each field padded to 4 bytes (the kernel's register layout). inet_ntop, not
    ipaddress: a read decodes 100,000 of them."""
    a, af = f.width // 8, f.af
    vip, address = socket.inet_ntop(af, key[4 : 4 + a]), socket.inet_ntop(af, data[:a])
    proto, port = key[4 + a], int.from_bytes(key[8 + a : 10 + a], "big")
    backend_port = int.from_bytes(data[a : a + 2], "big")
    backend = f"{address}:{backend_port}" if f.version == 4 else f"[{address}]:{backend_port}"
    return (f.version, mark(key), vip, proto, port, backend)
