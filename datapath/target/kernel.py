"""Realizing the pipeline's tables in the Linux kernel of the IPU namespace.

Forwarding is routed, not bridged: the bridge family has no conntrack on the
kernels we target, and services and policy need conntrack. Each network gets a
policy-routing table and a VXLAN device (VNI = network id); each port an
`iif` rule into its network's table and proxy ARP, so pods' on-link traffic
reaches the IPU. Services and policy live in one nftables inet table as maps
and sets, changed by one `nft -f` transaction per Write batch.

All kernel calls run on one worker thread that entered the namespace, so
netlink handles and child processes (nft) act there.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from finsy.proto import rpc_code
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from datapath.entries import ActionCall, Entry, Exact, Lpm, P4Error, Range, Ternary, ip, ip_text, mac_text
from datapath.netns import enter
from datapath.pipeline import DIRECTION_EGRESS, DIRECTION_INGRESS
from datapath.target import features as feat
from datapath.target.boxes import Box3, disjoint_3d
from datapath.target.store import Change, Store

log = logging.getLogger(__name__)

RULE_PRIORITY = 1000  # our `iif` rules; below main (32766)
TABLE_BASE = 0x4D000000  # routing table of network n is TABLE_BASE + n (never 253..255)
VXLAN_PORT = 4789
NUD_PERMANENT = 0x80


def tunnel_mac(vtep: int) -> str:
    """The MAC a node's VXLAN devices answer to, derived from its VTEP address
    so that peers can program it without asking (locally administered)."""
    return mac_text((0x0A << 40) | (vtep << 8))


@dataclass
class Network:
    id: int
    zone: int
    refs: int = 0
    vxlan: str = ""


@dataclass
class Group:
    refs: int = 0
    elements: frozenset[str] = frozenset()


@dataclass
class Pending:
    """One nft transaction in three phases: create objects, change elements, delete objects."""

    create: list[str] = field(default_factory=list)
    elements: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    groups: set[tuple[int, int]] = field(default_factory=set)
    dying: dict[tuple[int, int], Group] = field(default_factory=dict)  # released to zero in this batch

    def script(self) -> str:
        return "\n".join(self.create + self.elements + self.delete) + "\n"


class Kernel:
    def __init__(self, netns: str, prefix: str, vtep: str | None = None, underlay: str | None = None) -> None:
        self.netns, self.prefix = netns, prefix
        self.vtep, self.underlay = vtep, underlay
        self.table = (prefix + "ipu").replace("-", "_")
        self._pool = ThreadPoolExecutor(1, f"ipu-{netns}", initializer=enter, initargs=(netns,))
        self.ipr: IPRoute = self._run(IPRoute)
        self.networks: dict[int, Network] = {}
        self.tunnels: dict[tuple[int, int], int] = {}
        self.groups: dict[tuple[int, int], Group] = {}
        self.lb_chains: set[int] = set()
        self.pending = Pending()
        self.features = self._run(self._detect)
        log.info("kernel features in %s: %s", netns, self.features.as_dict())
        for what, how in self.features.used().items():
            log.info("  %s: %s", what, how)

    # --- plumbing -----------------------------------------------------------

    def _run(self, fn: Any, *args: Any) -> Any:
        return self._pool.submit(fn, *args).result()

    def _nft(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=300)

    def _detect(self) -> feat.Features:
        def vxlan() -> bool:
            name = f"{self.prefix}probe"[:15]
            try:
                self.ipr.link("add", ifname=name, kind="vxlan", vxlan_id=1, vxlan_port=VXLAN_PORT)
                self.ipr.link("del", ifname=name)
                return True
            except NetlinkError:
                return False

        return feat.detect(lambda s: self._nft(s).returncode == 0, vxlan, self.prefix)

    def close(self) -> None:
        self._pool.submit(self.ipr.close).result()
        self._pool.shutdown()

    # --- whole-state operations ----------------------------------------------

    def reset(self) -> None:
        """Remove everything a previous run left and install the empty pipeline."""
        self._run(self._reset)

    def _reset(self) -> None:
        self._nft(f"add table inet {self.table}\ndelete table inet {self.table}")
        for rule in self.ipr.get_rules(family=2):
            if rule.get("priority") == RULE_PRIORITY and (rule.get("table") or 0) >= TABLE_BASE:
                self.ipr.rule("del", table=rule.get("table"), priority=RULE_PRIORITY, iifname=rule.get("iifname"))
        for link in self.ipr.get_links():
            name = link.get("ifname")
            if name.startswith(f"{self.prefix}v") and link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "vxlan":
                self.ipr.link("del", index=link["index"])
        for route in self.ipr.get_routes(family=2):
            if (route.get("table") or 0) >= TABLE_BASE:
                self._quiet(self.ipr.route, "del", table=route.get("table"), type=route["type"],
                            dst=f"{route.get('dst') or '0.0.0.0'}/{route['dst_len']}")
        self._write_sysctl("net/ipv4/ip_forward", "1")
        for scope in ("all", "default"):
            self._write_sysctl(f"net/ipv4/conf/{scope}/rp_filter", "0")
        f = self.features
        zone = "ct zone set iifname map @port_zone" if f.ct_zone_map else ""
        zone_map = "map port_zone { typeof iifname : ct zone; }" if f.ct_zone_map else ""
        count_map = ("map svc_counters { type mark . ipv4_addr . inet_proto . inet_service : counter; }"
                     if f.counter_map else "")
        count = ("meta mark != 0 counter name meta mark . ip daddr . meta l4proto . th dport map @svc_counters"
                 if f.counter_map else "")
        t = self.table
        script = f"""
table inet {t} {{
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
        self._nft_checked(script)
        for state in (self.networks, self.tunnels, self.groups, self.lb_chains):
            state.clear()
        self.pending = Pending()

    def _write_sysctl(self, path: str, value: str) -> None:
        with open(f"/proc/sys/{path}", "w") as f:
            f.write(value)

    def _nft_checked(self, script: str) -> None:
        result = self._nft(script)
        if result.returncode != 0:
            raise P4Error(rpc_code.INTERNAL, f"nft transaction failed: {result.stderr.strip()[:2000]}")

    def _quiet(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        """A netlink removal where "already gone" is fine."""
        try:
            fn(*args, **kwargs)
        except NetlinkError as err:
            if err.code not in (2, 3, 19):  # ENOENT, ESRCH, ENODEV
                raise

    # --- per update -----------------------------------------------------------

    def prepare(self, c: Change) -> None:
        """Apply the netlink side of one update now and queue its nft side."""
        self._run(self._prepare, c)

    def _prepare(self, c: Change) -> None:
        e = c.new or c.old
        assert e is not None
        try:
            getattr(self, f"_{e.table}")(c.old, c.new)
        except (NetlinkError, OSError) as err:
            raise P4Error(rpc_code.INTERNAL, f"{e.table}: kernel refused: {err}") from err

    def flush(self, store: Store) -> None:
        """Commit the queued nft changes in one transaction."""
        self._run(self._flush, store)

    def _flush(self, store: Store) -> None:
        pending, self.pending = self.pending, Pending()
        for gkey in sorted(pending.groups):
            self._group_elements(gkey, store, pending)
        for gkey in sorted(pending.dying):
            pending.delete += [f"delete chain inet {self.table} {group_chain(gkey)}",
                               f"delete set inet {self.table} {group_set(gkey)}"]
        if pending.create or pending.elements or pending.delete:
            self._nft_checked(pending.script())

    def rebuild(self, store: Store) -> None:
        """Rebuild the whole kernel state from the store (after a failed transaction)."""
        self.reset()
        for table in ("port", "route", "neighbor", "service", "policy_pod", "policy_rule"):
            for e in list(store.entries(table)):
                self.prepare(Change(None, e))
        self.flush(store)

    # --- networks -------------------------------------------------------------

    def _acquire_network(self, net: int) -> Network:
        n = self.networks.get(net)
        if n is None:
            zone = 1 + max((x.zone for x in self.networks.values()), default=0)
            n = self.networks[net] = Network(net, zone)
            self._create_network(n)
        n.refs += 1
        return n

    def _release_network(self, net: int) -> None:
        n = self.networks[net]
        n.refs -= 1
        if n.refs == 0:
            del self.networks[net]
            self._quiet(self.ipr.link, "del", ifname=n.vxlan)
            self._quiet(self.ipr.rule, "del", table=TABLE_BASE + net, priority=RULE_PRIORITY, iifname=n.vxlan)
            self._quiet(self.ipr.route, "del", dst="0.0.0.0/0", table=TABLE_BASE + net)
            self._port_elements(n.vxlan, n, add=False)

    def _create_network(self, n: Network) -> None:
        n.vxlan = f"{self.prefix}v{n.id}"
        options: dict[str, Any] = dict(kind="vxlan", vxlan_id=n.id, vxlan_port=VXLAN_PORT, vxlan_learning=0)
        if self.vtep:
            options.update(vxlan_local=self.vtep, address=tunnel_mac(ip(self.vtep)))
        if self.underlay:
            options["vxlan_link"] = self._index(self.underlay)
        if not self.ipr.link_lookup(ifname=n.vxlan):
            self.ipr.link("add", ifname=n.vxlan, **options)
        self.ipr.link("set", ifname=n.vxlan, state="up")
        self._port_setup(n.vxlan, n)
        # The network's default route points into its own tunnel device, which
        # has no neighbour for unknown addresses, so such packets die there.
        # It keeps a network's packets out of the IPU's main table (the
        # underlay), and, being a unicast route through another device, lets
        # proxy ARP answer pods for any on-link address, service VIPs included,
        # without a route per VIP.
        self.ipr.route("replace", dst="0.0.0.0/0", table=TABLE_BASE + n.id, oif=self._index(n.vxlan))

    def _port_setup(self, link: str, n: Network) -> None:
        self._quiet(self.ipr.rule, "del", table=TABLE_BASE + n.id, priority=RULE_PRIORITY, iifname=link)
        self.ipr.rule("add", table=TABLE_BASE + n.id, priority=RULE_PRIORITY, iifname=link)
        self._port_elements(link, n, add=True)

    def _port_elements(self, link: str, n: Network, add: bool) -> None:
        verb = "add" if add else "delete"
        q = self.pending.elements
        q.append(f'{verb} element inet {self.table} port_net {{ "{link}" : {n.id} }}')
        if self.features.ct_zone_map:
            q.append(f'{verb} element inet {self.table} port_zone {{ "{link}" : {n.zone} }}')

    def _index(self, link: str) -> int:
        found = self.ipr.link_lookup(ifname=link)
        if not found:
            raise P4Error(rpc_code.FAILED_PRECONDITION, f"port {link!r}: no such link in the IPU namespace")
        return int(found[0])

    # --- tables ---------------------------------------------------------------

    def _port(self, old: Entry | None, new: Entry | None) -> None:
        if new is not None:
            link, net = _exact(new, "port"), int(new.actions[0].params[0])
            index = self._index(str(link))
            n = self._acquire_network(net)
            for knob, value in (("proxy_arp", "1"), ("rp_filter", "0"), ("forwarding", "1")):
                self._write_sysctl(f"net/ipv4/conf/{link}/{knob}", value)
            # Answer ARP at once: the default 0.8 s proxy delay stalls every first packet.
            self._write_sysctl(f"net/ipv4/neigh/{link}/proxy_delay", "0")
            self.ipr.link("set", index=index, state="up")
            if old is not None:
                self._port_teardown(old)
            self._port_setup(str(link), n)
        elif old is not None:
            self._port_teardown(old)

    def _port_teardown(self, old: Entry) -> None:
        link, net = str(_exact(old, "port")), int(old.actions[0].params[0])
        self._quiet(self.ipr.rule, "del", table=TABLE_BASE + net, priority=RULE_PRIORITY, iifname=link)
        self._port_elements(link, self.networks[net], add=False)
        self._release_network(net)

    def _route(self, old: Entry | None, new: Entry | None) -> None:
        if new is not None:
            net, dst = _net(new), _dst(new)
            call = new.actions[0]
            if call.name == "to_tunnel" and dst.prefix_len != 32:
                raise P4Error(rpc_code.UNIMPLEMENTED, "route: to_tunnel needs a /32 destination on this target")
            # Resolve the port first: a missing link must fail before any reference is taken.
            oif = self._index(str(call.params[0])) if call.name == "to_port" else 0
            n = self._acquire_network(net)
            try:
                self._install_route(n, dst, call, oif)
            except BaseException:
                # The update fails and its entry is not stored, so it holds no
                # reference (the kernel refuses a route through a port that is down).
                self._release_network(net)
                raise
        if old is not None:
            self._route_release(old, removed=new is None)

    def _install_route(self, n: Network, dst: Lpm, call: ActionCall, oif: int) -> None:
        cidr, table = f"{ip_text(dst.value)}/{dst.prefix_len}", TABLE_BASE + n.id
        if call.name == "to_port":
            self.ipr.route("replace", dst=cidr, table=table, oif=oif)
        elif call.name == "drop":
            self.ipr.route("replace", dst=cidr, table=table, type="blackhole")
        else:
            vtep = int(call.params[0])
            vx = self._index(n.vxlan)
            self.ipr.route("replace", dst=cidr, table=table, oif=vx)
            self.ipr.neigh("replace", dst=ip_text(dst.value), lladdr=tunnel_mac(vtep), ifindex=vx,
                           state=NUD_PERMANENT)
            self._acquire_tunnel(n, vtep)  # last: nothing after it can fail and leave the count up

    def _route_release(self, old: Entry, removed: bool) -> None:
        net, dst = _net(old), _dst(old)
        n = self.networks[net]
        if removed and dst.prefix_len == 0:
            # The network's own default route (into its tunnel) comes back.
            self.ipr.route("replace", dst="0.0.0.0/0", table=TABLE_BASE + net, oif=self._index(n.vxlan))
        elif removed:
            self._quiet(self.ipr.route, "del", dst=f"{ip_text(dst.value)}/{dst.prefix_len}", table=TABLE_BASE + net)
        call = old.actions[0]
        if call.name == "to_tunnel":
            if removed:
                self._quiet(self.ipr.neigh, "del", dst=ip_text(dst.value), ifindex=self._index(n.vxlan))
            self._release_tunnel(n, int(call.params[0]))
        self._release_network(net)

    def _acquire_tunnel(self, n: Network, vtep: int) -> None:
        key = (n.id, vtep)
        if key not in self.tunnels:
            self.ipr.fdb("append", ifindex=self._index(n.vxlan), lladdr=tunnel_mac(vtep), dst=ip_text(vtep),
                         state=NUD_PERMANENT)
        self.tunnels[key] = self.tunnels.get(key, 0) + 1

    def _release_tunnel(self, n: Network, vtep: int) -> None:
        key = (n.id, vtep)
        self.tunnels[key] -= 1
        if not self.tunnels[key]:
            del self.tunnels[key]
            self._quiet(self.ipr.fdb, "del", ifindex=self._index(n.vxlan), lladdr=tunnel_mac(vtep),
                        dst=ip_text(vtep))

    def _neighbor(self, old: Entry | None, new: Entry | None) -> None:
        if new is not None:
            self.ipr.neigh("replace", dst=ip_text(int(_exact(new, "ip"))), lladdr=mac_text(int(new.actions[0].params[0])),
                           ifindex=self._index(str(_exact(new, "port"))), state=NUD_PERMANENT)
        elif old is not None:
            found = self.ipr.link_lookup(ifname=str(_exact(old, "port")))
            if found:
                self._quiet(self.ipr.neigh, "del", dst=ip_text(int(_exact(old, "ip"))), ifindex=found[0])

    def _service(self, old: Entry | None, new: Entry | None) -> None:
        # No chain or anonymous map per service: creating thousands of
        # anonymous sets in one table is quadratic in the kernel (50 s for
        # 10,000). Instead one `lb_<n>` chain per group size picks a bucket
        # (kept in ct mark, so conntrack remembers the choice) and one shared
        # map holds every (service, bucket) -> backend.
        e = new or old
        assert e is not None
        if not self.features.numgen_dnat_map:
            raise P4Error(rpc_code.UNIMPLEMENTED, "service: this kernel has no numgen DNAT maps")
        net, vip = _net(e), int(_exact(e, "vip"))
        key = f"{net} . {ip_text(vip)} . {_exact(e, 'proto')} . {_exact(e, 'port')}"
        name = service_name(e)
        t, q = self.table, self.pending
        old_size = sum(c.weight for c in old.actions) if old else 0
        new_size = sum(c.weight for c in new.actions) if new else 0
        if old is not None:
            q.elements.append(f"delete element inet {t} backends {{ "
                              + ", ".join(f"{key} . {i}" for i in range(old_size)) + " }")
        if new is not None:
            self._lb_chain(new_size)
            buckets = [params for call in new.actions for params in [call.params] * call.weight]
            q.elements.append(f"add element inet {t} backends {{ " + ", ".join(
                f"{key} . {i} : {ip_text(int(b[0]))} . {b[1]}" for i, b in enumerate(buckets)) + " }")
        counted = self.features.counter_map
        if old is None and new is not None:
            self._acquire_network(net)
            if counted:
                q.create.append(f"add counter inet {t} {name}")
                q.elements.append(f'add element inet {t} svc_counters {{ {key} : "{name}" }}')
        if new is None or old is None or old_size != new_size:
            if old is not None:
                q.elements.append(f"delete element inet {t} svc {{ {key} }}")
            if new is not None:
                q.elements.append(f"add element inet {t} svc {{ {key} : goto lb_{new_size} }}")
        if new is None and old is not None:
            if counted:
                q.elements.append(f"delete element inet {t} svc_counters {{ {key} }}")
                q.delete.append(f"delete counter inet {t} {name}")
            self._release_network(net)

    def _lb_chain(self, size: int) -> None:
        if size in self.lb_chains:
            return
        self.lb_chains.add(size)
        t = self.table
        self.pending.create += [
            f"add chain inet {t} lb_{size}",
            f"add rule inet {t} lb_{size} ct mark set numgen random mod {size} "
            f"dnat ip to meta mark . ip daddr . meta l4proto . th dport . ct mark map @backends",
        ]

    def _require_policy(self) -> None:
        if not self.features.nft_concat_intervals:
            raise P4Error(rpc_code.UNIMPLEMENTED, "policy: this kernel has no concatenated interval sets")

    def _policy_pod(self, old: Entry | None, new: Entry | None) -> None:
        self._require_policy()
        t, q = self.table, self.pending
        if old is not None:
            d, net, pod = int(_exact(old, "direction")), _net(old), ip_text(int(_exact(old, "pod_ip")))
            q.elements.append(f"delete element inet {t} {_map(d)} {{ {net} . {pod} }}")
            self._release_group((d, int(old.actions[0].params[0])))
        if new is not None:
            d, net, pod = int(_exact(new, "direction")), _net(new), ip_text(int(_exact(new, "pod_ip")))
            gkey = (d, int(new.actions[0].params[0]))
            self._acquire_group(gkey)
            q.elements.append(f"add element inet {t} {_map(d)} {{ {net} . {pod} : jump {group_chain(gkey)} }}")

    def _policy_rule(self, old: Entry | None, new: Entry | None) -> None:
        self._require_policy()
        if new is not None:
            self._acquire_group(_group_key(new))
        if old is not None:
            self._release_group(_group_key(old))

    def _acquire_group(self, gkey: tuple[int, int]) -> None:
        g = self.groups.get(gkey)
        if g is None and gkey in self.pending.dying:
            # Released and taken again within one batch: keep the kernel objects.
            g = self.groups[gkey] = self.pending.dying.pop(gkey)
        if g is None:
            g = self.groups[gkey] = Group()
            d, chain, s, t = gkey[0], group_chain(gkey), group_set(gkey), self.table
            peer = "ip saddr" if d == DIRECTION_INGRESS else "ip daddr"
            self.pending.create += [
                f"add set inet {t} {s} {{ type ipv4_addr . inet_proto . inet_service; flags interval; }}",
                f"add chain inet {t} {chain}",
                f"add rule inet {t} {chain} {peer} . meta l4proto . th dport @{s} return",
                f"add rule inet {t} {chain} counter drop",
            ]
        g.refs += 1
        self.pending.groups.add(gkey)

    def _release_group(self, gkey: tuple[int, int]) -> None:
        g = self.groups[gkey]
        g.refs -= 1
        self.pending.groups.add(gkey)
        if g.refs == 0:
            self.pending.dying[gkey] = self.groups.pop(gkey)

    def _group_elements(self, gkey: tuple[int, int], store: Store, q: Pending) -> None:
        g = self.groups.get(gkey)
        if g is None:
            return
        rules = [e for e in store.entries("policy_rule") if _group_key(e) == gkey]
        want = frozenset(_element(b) for b in disjoint_3d(_box(e) for e in rules))
        s = f"inet {self.table} {group_set(gkey)}"
        gone, added = sorted(g.elements - want), sorted(want - g.elements)
        # Removals first: the kernel refuses an element overlapping a live one.
        for chunk in _chunks(gone):
            q.elements.append(f"delete element {s} {{ {', '.join(chunk)} }}")
        for chunk in _chunks(added):
            q.elements.append(f"add element {s} {{ {', '.join(chunk)} }}")
        g.elements = want

    # --- counters -------------------------------------------------------------

    def counters(self, tables: set[str]) -> dict[str, tuple[int, int]]:
        """Packets and bytes per entry of `tables` (those with direct counters), by `counter_key`.

        Listing makes nft load the whole ruleset (seconds at 10,000 services),
        so only the tables asked for are read.
        """
        return self._run(self._counters, tables)  # type: ignore[no-any-return]

    def _counters(self, tables: set[str]) -> dict[str, tuple[int, int]]:
        counters: dict[str, tuple[int, int]] = {}
        if "service" in tables:
            out = self._nft_json(["nft", "-j", "list", "counters", "table", "inet", self.table])
            for item in out.get("nftables", []):
                counter = item.get("counter")
                if counter and counter["name"].startswith("svc_"):
                    counters[counter["name"]] = (counter["packets"], counter["bytes"])
        # Policy membership counts in its map elements: packets of new flows
        # that looked the pod up (established flows are accepted before).
        for direction, name in ((DIRECTION_INGRESS, "ingress"), (DIRECTION_EGRESS, "egress")):
            if "policy_pod" not in tables:
                break
            out = self._nft_json(["nft", "-j", "list", "map", "inet", self.table, name])
            for item in out.get("nftables", []):
                for key, _ in (item.get("map") or {}).get("elem", []):
                    elem = key.get("elem", {})
                    net, pod = elem["val"]["concat"]
                    c = elem.get("counter", {})
                    counters[f"pod/{direction}/{net}/{pod}"] = (c.get("packets", 0), c.get("bytes", 0))
        return counters

    def _nft_json(self, argv: list[str]) -> dict[str, Any]:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        return json.loads(result.stdout) if result.returncode == 0 else {}

    def ruleset(self) -> str:
        return self._run(lambda: subprocess.run(["nft", "list", "table", "inet", self.table],
                                                capture_output=True, text=True).stdout)  # type: ignore[no-any-return]


def _exact(e: Entry, name: str) -> int | str:
    m = e.get(name)
    assert isinstance(m, Exact), f"{e.table}.{name}"
    return m.value


def _net(e: Entry) -> int:
    return int(_exact(e, "network_id"))


def _dst(e: Entry) -> Lpm:
    """A route's destination; an omitted LPM field is the default route (prefix 0)."""
    dst = e.get("dst")
    assert dst is None or isinstance(dst, Lpm), f"{e.table}.dst"
    return dst if dst is not None else Lpm(0, 0)


def _map(direction: int) -> str:
    return "ingress" if direction == DIRECTION_INGRESS else "egress"


def _group_key(e: Entry) -> tuple[int, int]:
    return (int(_exact(e, "direction")), int(_exact(e, "group")))


def group_chain(gkey: tuple[int, int]) -> str:
    return f"pg_{_map(gkey[0])}_{gkey[1]}"


def group_set(gkey: tuple[int, int]) -> str:
    return f"pgs_{_map(gkey[0])}_{gkey[1]}"


def counter_key(e: Entry) -> str:
    """Where `Kernel.counters` reports an entry's direct counter."""
    if e.table == "policy_pod":
        return f"pod/{_exact(e, 'direction')}/{_net(e)}/{ip_text(int(_exact(e, 'pod_ip')))}"
    return service_name(e)


def service_name(e: Entry) -> str:
    return f"svc_{_net(e)}_{_exact(e, 'vip')}_{_exact(e, 'proto')}_{_exact(e, 'port')}"


def _ternary_range(m: object, width: int) -> tuple[int, int]:
    if m is None:
        return 0, (1 << width) - 1
    assert isinstance(m, Ternary)
    span = ((1 << width) - 1) & ~m.mask
    if span & (span + 1):
        raise P4Error(rpc_code.UNIMPLEMENTED, "policy_rule: only prefix masks are supported")
    return m.value, m.value | span


def _box(e: Entry) -> Box3:
    alo, ahi = _ternary_range(e.get("peer"), 32)
    plo, phi = _ternary_range(e.get("proto"), 8)
    port = e.get("port")
    qlo, qhi = (port.low, port.high) if isinstance(port, Range) else (0, 65535)
    return (alo, ahi, plo, phi, qlo, qhi)


def check_rule(e: Entry) -> None:
    """Reject what the kernel realization cannot express, before anything changes."""
    _box(e)


def _element(b: Box3) -> str:
    def span(lo: int, hi: int, fmt: Any = str) -> str:
        return fmt(lo) if lo == hi else f"{fmt(lo)}-{fmt(hi)}"

    return f"{span(b[0], b[1], ip_text)} . {span(b[2], b[3])} . {span(b[4], b[5])}"


def _chunks(items: list[str], size: int = 2000) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
