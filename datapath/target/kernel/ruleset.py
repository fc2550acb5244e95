"""The empty pipeline in nftables: the maps the realizers fill and the chains
that apply them, in the order the IPU applies its tables. One `inet` table
serves both families; each address-holding map exists per family (`svc`,
`svc6`, ...).

  prerouting (raw):    port -> network mark and conntrack zone (port table;
                       one zone per network for both families); the source
                       guard drops what a routed port sends from an address
                       or MAC that is not its own (source tables, guard.py)
  prerouting (dstnat): service counters, then (network, VIP, proto, port) -> lb chain (service tables)
  forward:             established flows pass; egress policy of the source,
                       ingress policy of the destination (policy tables)
  postrouting (srcnat): hairpin: a connection DNATed back to its own client
                       leaves with the Service VIP as its source
  input/output:        pods reach the IPU only as a router (and for IPv6
                       neighbour discovery); no ICMPv6 redirects to pods

Routing (route, neighbor) happens between prerouting and forward, in the
network's policy-routing tables.
"""

from __future__ import annotations

from datapath.target.features import Features
from datapath.target.kernel.context import FAMILIES, Family
from datapath.target.kernel.guard import SPOOFED_COUNTER

LINK_LOCAL6 = "fe80::/10, ::"  # sources a pod uses before (or without) its own addresses


def _family_maps(f: Family, counters: bool) -> str:
    s, a = f.suffix, f.addr_type
    count_map = f"map svc_counters{s} {{ type mark . {a} . inet_proto . inet_service : counter; }}" if counters else ""
    return f"""
  map svc{s} {{ type mark . {a} . inet_proto . inet_service : verdict; }}
  {count_map}
  map backends{s} {{ type mark . {a} . inet_proto . inet_service . mark : {a} . inet_service; counter; }}
  map egress{s} {{ type mark . {a} : verdict; counter; }}
  map ingress{s} {{ type mark . {a} : verdict; counter; }}
  set hairpin{s} {{ type mark . {a} . {a}; }}
  set source{s} {{ type ifname . {a} . ether_addr; }}"""


def _nat_rules(f: Family, counters: bool) -> str:
    s, p = f.suffix, f.nft
    count = (f"meta mark != 0 counter name meta mark . {p} daddr . meta l4proto . th dport map @svc_counters{s}"
             if counters else "")
    return f"""
    {count}
    meta mark != 0 meta mark . {p} daddr . meta l4proto . th dport vmap @svc{s}"""


def empty_pipeline(table: str, f: Features) -> str:
    zone = "ct zone set iifname map @port_zone" if f.ct_zone_map else ""
    zone_map = "map port_zone { typeof iifname : ct zone; }" if f.ct_zone_map else ""
    maps = "".join(_family_maps(fam, f.counter_map) for fam in FAMILIES)
    nat = "".join(_nat_rules(fam, f.counter_map) for fam in FAMILIES)
    policy = "".join(f"""
    meta mark != 0 meta mark . {fam.nft} saddr vmap @egress{fam.suffix}
    meta mark != 0 meta mark . {fam.nft} daddr vmap @ingress{fam.suffix}""" for fam in FAMILIES)
    # Hairpin (a pod to its own Service): after DNAT the packet would come
    # back with the pod's own address as its source, which the pod drops as a
    # martian; the source becomes the VIP the pod asked for, and conntrack
    # undoes both translations on the reply. nft cannot compare two fields,
    # so `hairpin` holds (network, address, address) of each local pod: only
    # packets whose source and destination are that one pod match.
    hairpin = "".join(f"""
    ct status dnat meta mark . {fam.nft} saddr . {fam.nft} daddr @hairpin{fam.suffix} snat {fam.nft} to ct original {fam.nft} daddr"""
                      for fam in FAMILIES)
    # Source guard, before conntrack sees the packet: a guarded (routed) port
    # sends only from its own (address, MAC) pairs; IPv6 neighbour discovery
    # and DAD (link-local or unspecified source) only with one of its MACs.
    guard = f"""
    iifname @guarded iifname . ip saddr . ether saddr != @source counter name {SPOOFED_COUNTER} drop
    iifname @guarded ip6 saddr {{ {LINK_LOCAL6} }} iifname . ether saddr != @source_mac counter name {SPOOFED_COUNTER} drop
    iifname @guarded ip6 saddr != {{ {LINK_LOCAL6} }} iifname . ip6 saddr . ether saddr != @source6 counter name {SPOOFED_COUNTER} drop"""
    return f"""
table inet {table} {{
  map port_net {{ type ifname : mark; }}
  set guarded {{ type ifname; }}
  set source_mac {{ type ifname . ether_addr; }}
  counter {SPOOFED_COUNTER} {{ }}
  {zone_map}
  {maps}
  chain pre_raw {{
    type filter hook prerouting priority raw; policy accept;
    meta mark set iifname map @port_net
    {guard}
    {zone}
  }}
  chain pre_nat {{
    type nat hook prerouting priority dstnat; policy accept;
    {nat}
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    ct state invalid drop
    {policy}
  }}
  chain post_nat {{
    type nat hook postrouting priority srcnat; policy accept;
    {hairpin}
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    # Pods reach the IPU only as a router, never its own services; IPv6
    # neighbour discovery is how they find it (and the proxied addresses).
    meta mark != 0 ct state established,related accept
    meta mark != 0 icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit }} accept
    meta mark != 0 drop
  }}
  chain output {{
    type filter hook output priority filter; policy accept;
    # A hairpin leaves by the port it came in; the pod must not be told to
    # reach itself directly (IPv6 has no send_redirects knob).
    icmpv6 type nd-redirect drop
  }}
}}
"""
