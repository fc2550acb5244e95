"""Kernel feature detection for the IPU target: try, fall back, report.

Each probe builds a throwaway nftables table or link inside the target's own
namespace and removes it again. The result is logged at start and printed by
`multinet ipu --features`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

_PROBES = {
    # Concatenated interval sets (nft "pipapo"): policy peers x protocols x port ranges.
    "nft_concat_intervals": "add set inet {t} s {{ type ipv4_addr . inet_proto . inet_service; flags interval; }}\n"
                            "add element inet {t} s {{ 10.0.0.0/8 . 6 . 80-90 }}",
    # ct zone chosen by input port through a map: keeps overlapping networks apart in conntrack.
    "ct_zone_map": "add map inet {t} z {{ typeof iifname : ct zone; }}\n"
                   "add chain inet {t} c {{ type filter hook prerouting priority raw; }}\n"
                   "add rule inet {t} c ct zone set iifname map @z",
    # Service load balancing: a bucket by numgen kept in ct mark, then DNAT to
    # address.port from one shared map keyed by (network, VIP, proto, port, bucket).
    "numgen_dnat_map": "add map inet {t} b {{ type mark . ipv4_addr . inet_proto . inet_service . mark : "
                       "ipv4_addr . inet_service; }}\n"
                       "add chain inet {t} n {{ type nat hook prerouting priority dstnat; }}\n"
                       "add rule inet {t} n ct mark set numgen random mod 2 dnat ip to meta mark . ip daddr . "
                       "meta l4proto . th dport . ct mark map @b",
    # Per-entry counters: named counters chosen through a map.
    "counter_map": "add map inet {t} c {{ type ipv4_addr : counter; }}\n"
                   "add chain inet {t} k\nadd rule inet {t} k counter name ip daddr map @c",
    "jhash": "add chain inet {t} j\nadd rule inet {t} j meta mark set jhash ip saddr mod 4",
    "verdict_map_concat": "add map inet {t} v {{ type mark . ipv4_addr : verdict; }}",
    # Not used, reported: the bridge family has no conntrack on some kernels,
    # which is why the target routes between ports instead of bridging.
    "bridge_conntrack": "add table bridge {t}\nadd chain bridge {t} f {{ type filter hook forward priority 0; }}\n"
                        "add rule bridge {t} f ct state established accept",
    "flowtable": "add flowtable inet {t} f {{ hook ingress priority 0; devices = {{ lo }}; }}",
}


@dataclass(frozen=True)
class Features:
    nft_concat_intervals: bool
    ct_zone_map: bool
    numgen_dnat_map: bool
    counter_map: bool
    jhash: bool
    verdict_map_concat: bool
    bridge_conntrack: bool
    flowtable: bool
    vxlan: bool

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)

    def used(self) -> dict[str, str]:
        """What the target does with what it found."""
        return {
            "forwarding": "routed per network (policy-routing table per network and family, proxy ARP on ports)",
            "ipv6": "dual stack: IPv6 tables beside IPv4 ones, VXLAN over the IPv4 underlay, proxy NDP entries "
                    "per (port, host address) (no wildcard proxy NDP in the kernel)",
            "policy": "nftables inet family, per-group concatenated interval sets"
            if self.nft_concat_intervals else "UNAVAILABLE: no concatenated interval sets",
            "services": "nftables: numgen bucket in ct mark, one shared (service, bucket) -> backend DNAT map; "
                        "conntrack keeps established flows" if self.numgen_dnat_map else "UNAVAILABLE: no numgen DNAT maps",
            "counters": "named nft counters per service, map element counters per policy member"
            if self.counter_map else "fallback: none",
            "jhash": "not used (random buckets)",
            "conntrack_zones": "one zone per network, chosen by input port"
            if self.ct_zone_map else "fallback: one shared zone (overlapping 5-tuples of two networks may clash)",
            "overlay": "VXLAN per network (VNI = network id)" if self.vxlan else "UNAVAILABLE: no vxlan",
            "bridge_conntrack": "not used (routing instead of bridging)",
            "flowtable": "not used",
        }


Runner = Callable[[str], bool]  # feeds a script to `nft -f -` in the namespace; True on success


def _nft_ok(nft: Runner, table: str, body: str) -> bool:
    ok = nft(f"add table inet {table}\n" + body.format(t=table))
    # nft of this era has no "destroy": add-then-delete removes it whether or not it exists.
    nft(f"add table inet {table}\ndelete table inet {table}\nadd table bridge {table}\ndelete table bridge {table}")
    return ok


def detect(nft: Runner, vxlan_probe: Callable[[], bool], prefix: str) -> Features:
    table = f"{prefix}probe"
    found = {name: _nft_ok(nft, table, body) for name, body in _PROBES.items()}
    return Features(**found, vxlan=vxlan_probe())
