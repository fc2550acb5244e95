"""The empty pipeline in nftables: the maps the realizers fill and the chains
that apply them, in the order the IPU applies its tables.

  prerouting (raw):    port -> network mark and conntrack zone (port table)
  prerouting (dstnat): service counters, then (network, VIP, proto, port) -> lb chain (service table)
  forward:             established flows pass; egress policy of the source,
                       ingress policy of the destination (policy tables)
  input:               pods reach the IPU only as a router

Routing (route, neighbor) happens between prerouting and forward, in the
network's policy-routing table.
"""

from __future__ import annotations

from datapath.target.features import Features


def empty_pipeline(table: str, f: Features) -> str:
    zone = "ct zone set iifname map @port_zone" if f.ct_zone_map else ""
    zone_map = "map port_zone { typeof iifname : ct zone; }" if f.ct_zone_map else ""
    count_map = ("map svc_counters { type mark . ipv4_addr . inet_proto . inet_service : counter; }"
                 if f.counter_map else "")
    count = ("meta mark != 0 counter name meta mark . ip daddr . meta l4proto . th dport map @svc_counters"
             if f.counter_map else "")
    return f"""
table inet {table} {{
  map port_net {{ type ifname : mark; }}
  {zone_map}
  map svc {{ type mark . ipv4_addr . inet_proto . inet_service : verdict; }}
  {count_map}
  map backends {{ type mark . ipv4_addr . inet_proto . inet_service . mark : ipv4_addr . inet_service; }}
  map egress {{ type mark . ipv4_addr : verdict; counter; }}
  map ingress {{ type mark . ipv4_addr : verdict; counter; }}
  chain pre_raw {{
    type filter hook prerouting priority raw; policy accept;
    meta mark set iifname map @port_net
    {zone}
  }}
  chain pre_nat {{
    type nat hook prerouting priority dstnat; policy accept;
    {count}
    meta mark != 0 meta mark . ip daddr . meta l4proto . th dport vmap @svc
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    ct state invalid drop
    meta mark != 0 meta mark . ip saddr vmap @egress
    meta mark != 0 meta mark . ip daddr vmap @ingress
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    # Pods reach the IPU only as a router, never its own services.
    meta mark != 0 ct state established,related accept
    meta mark != 0 drop
  }}
}}
"""
