"""Reading the kernel's counters for `/metrics`: only counting objects, never a rule.

One `nft -j list counters` gives every named counter (services `svc*_`,
policy verdicts `pst_*`); one `list map` per family gives the service
buckets' element counters (`backends`, `backends6`), summed per backend.
Listing the table or ruleset would make nft load and print every rule and
element (seconds at 10,000 Services); these listings load only the objects
asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datapath.target.kernel.context import FAMILIES, KernelContext
from datapath.target.realizer import Counts

# (family version, network, VIP, protocol number, port, backend "address:port") -> new connections, bytes
BackendKey = tuple[int, int, str, int, int, str]
_PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132}


@dataclass
class KernelStats:
    counters: dict[str, Counts] = field(default_factory=dict)
    backends: dict[BackendKey, Counts] = field(default_factory=dict)


def read_stats(ctx: KernelContext) -> KernelStats:
    out = KernelStats()
    for item in ctx.nft_json("list", "counters", "table", "inet", ctx.table).get("nftables", []):
        counter = item.get("counter")
        if counter:
            out.counters[counter["name"]] = (counter["packets"], counter["bytes"])
    for f in FAMILIES:
        listed = ctx.nft_json("list", "map", "inet", ctx.table, f"backends{f.suffix}")
        for item in listed.get("nftables", []):
            for key, value in (item.get("map") or {}).get("elem", []):
                _add_bucket(out, f.version, key, value)
    return out


def _add_bucket(out: KernelStats, version: int, key: dict[str, Any], value: dict[str, Any]) -> None:
    elem = key.get("elem", {})
    net, vip, proto, port, _bucket = elem["val"]["concat"]
    address, backend_port = value["concat"]
    c = elem.get("counter", {})
    number = _PROTOCOLS.get(proto, proto) if isinstance(proto, str) else int(proto)
    backend = f"{address}:{backend_port}" if version == 4 else f"[{address}]:{backend_port}"
    k = (version, int(net), str(vip), int(number), int(port), backend)
    have = out.backends.get(k, (0, 0))
    out.backends[k] = (have[0] + c.get("packets", 0), have[1] + c.get("bytes", 0))
