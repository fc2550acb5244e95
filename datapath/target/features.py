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
    # Random DNAT to address.port pairs from a map (service load balancing).
    "numgen_dnat_map": "add chain inet {t} n {{ type nat hook prerouting priority dstnat; }}\n"
                       "add rule inet {t} n meta l4proto tcp dnat ip to numgen random mod 2 map "
                       "{{ 0 : 10.0.0.1 . 80, 1 : 10.0.0.2 . 80 }}",
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
            "forwarding": "routed per network (policy-routing table per network, proxy ARP on ports)",
            "policy": "nftables inet family, per-group concatenated interval sets"
            if self.nft_concat_intervals else "UNAVAILABLE: no concatenated interval sets",
            "services": "nftables numgen random DNAT maps with conntrack"
            if self.numgen_dnat_map else "UNAVAILABLE: no numgen DNAT maps",
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
