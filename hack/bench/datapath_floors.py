"""The datapath benchmark's floors: what the kernel alone takes for the same
work, measured in the same run as the target (datapath_bench.py).

  - the ruleset the target programmed, dumped and loaded by `nft -f` into a
    fresh namespace;
  - one P4Runtime Write of many host routes beside the same routes added by
    `ip -batch` into a fresh namespace;
  - a bare VXLAN path between two pod namespaces, built like the testbed's
    (veth into a node namespace, VXLAN over the same kind of underlay) but
    with plain routes, proxy ARP and no nftables or policy routing; and the
    same path with conntrack alone (a zone set on every packet, established
    flows accepted): what any stateful pipeline pays for its state.
"""

from __future__ import annotations

import ipaddress
import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from datapath.client.datapath import P4RuntimeDatapath
from datapath.client.p4rt import diff
from datapath.entries import ActionCall, Exact, entry, ip, prefix
from datapath.netns import run_in
from datapath.target.kernel.context import TABLE_BASE, VXLAN_PORT, nft_table, tunnel_mac
from multinet.cluster.topology import UNDERLAY_LINK
from tests.support.testbed import Pod, Testbed


def _fresh_ns(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "netns", "add", name], check=True)


def _timed_in(netns: str, argv: list[str], text: str) -> float:
    start = time.monotonic()
    result = subprocess.run(["ip", "netns", "exec", netns, *argv], input=text, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} in {netns}: {result.stderr.strip()[:500]}")
    return elapsed


def nft_floor(ipu_ns: str, prefix_: str) -> dict[str, Any]:
    """The kernel's own time to load the target's table: `nft list table` of
    what was programmed, loaded by `nft -f` into a fresh namespace."""
    table = nft_table(prefix_)
    start = time.monotonic()
    dump = run_in(ipu_ns, ["nft", "list", "table", "inet", table]).stdout
    listed = time.monotonic() - start
    ns = f"{prefix_}nftfl"
    _fresh_ns(ns)
    try:
        loaded = _timed_in(ns, ["nft", "-f", "-"], dump)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return {"nft_list_seconds": round(listed, 3), "nft_load_seconds": round(loaded, 3),
            "ruleset_bytes": len(dump), "ruleset_lines": dump.count("\n")}


def write_seconds(metrics_url: str | None) -> float | None:
    """The target's own time in Write so far (its write_seconds histogram's sum)."""
    if not metrics_url:
        return None
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(metrics_url, timeout=300) as response:
        text = response.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "multinet_ipu_p4runtime_write_seconds_sum")


def _route_addresses(count: int) -> list[str]:
    base = int(ipaddress.IPv4Address("10.128.0.0"))
    return [str(ipaddress.IPv4Address(base + i + 1)) for i in range(count)]


def routes(dp: P4RuntimeDatapath, pod: Pod, network_id: int, count: int, prefix_: str,
           check: Callable[[], None] | None = None) -> dict[str, Any]:
    """One Write of `count` host routes to a pod's port, realized (`check`
    runs right after it), beside the same routes added by the kernel alone
    (`ip -batch` into a fresh namespace holding a veth of the same name)."""
    addresses = _route_addresses(count)
    rep = pod.attachment.representor
    new = [entry("route", {"network_id": Exact(network_id), "dst": prefix(f"{a}/32")}, ActionCall("to_port", (rep,)))
           for a in addresses]
    updates = diff({}, {e.key: e for e in new})
    start = time.monotonic()
    dp.client.write(updates, batch=len(updates))  # one Write
    inserted = time.monotonic() - start
    if check is not None:
        check()
    start = time.monotonic()
    dp.client.write(diff({e.key: e for e in new}, {}), batch=len(updates))
    deleted = time.monotonic() - start
    ns = f"{prefix_}rtfl"
    _fresh_ns(ns)
    try:
        run_in(ns, ["ip", "link", "add", rep, "type", "veth", "peer", "name", f"{rep}p"])
        run_in(ns, ["ip", "link", "set", rep, "up"])
        table = TABLE_BASE + network_id
        floor = _timed_in(ns, ["ip", "-batch", "-"],
                          "".join(f"route replace {a}/32 dev {rep} table {table}\n" for a in addresses))
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return {"routes": count, "write_seconds": round(inserted, 3), "entries_per_second": round(count / inserted),
            "delete_write_seconds": round(deleted, 3),
            "kernel_ip_batch_seconds": round(floor, 3), "kernel_entries_per_second": round(count / floor),
            "ratio_to_kernel": round(floor / inserted, 3)}


def bare_vxlan(tb: Testbed, network_id: int) -> tuple[Pod, Pod]:
    """Two pods on two nodes of `tb` joined by a bare VXLAN path: a VXLAN
    device per node namespace (the target's VNI, port and MAC scheme), host
    routes, static neighbour and FDB entries, proxy ARP; no nftables, no
    policy routing. Returns (client, server)."""
    n1, n2 = tb.add_node("n1"), tb.add_node("n2")
    server = tb.add_pod(n2, "bsrv", network_id, "10.51.0.2/16")
    client = tb.add_pod(n1, "bcli", network_id, "10.51.0.3/16")
    for here, there, local, remote in ((n1, n2, client, server), (n2, n1, server, client)):
        ns, vx, rep = here.ipu_ns, f"{tb.prefix}bvx", local.attachment.representor
        run_in(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1", f"net.ipv4.conf.{rep}.proxy_arp=1",
                    f"net.ipv4.neigh.{rep}.proxy_delay=0"])
        run_in(ns, ["ip", "link", "add", vx, "type", "vxlan", "id", str(network_id), "local", here.vtep,
                    "dev", UNDERLAY_LINK, "dstport", str(VXLAN_PORT), "nolearning"])
        run_in(ns, ["ip", "link", "set", vx, "address", tunnel_mac(ip(here.vtep)), "up"])
        run_in(ns, ["ip", "link", "set", rep, "up"])
        run_in(ns, ["ip", "route", "add", f"{local.ip}/32", "dev", rep])
        run_in(ns, ["ip", "route", "add", f"{remote.ip}/32", "dev", vx])
        mac = tunnel_mac(ip(there.vtep))
        run_in(ns, ["ip", "neigh", "replace", remote.ip, "lladdr", mac, "dev", vx, "nud", "permanent"])
        run_in(ns, ["bridge", "fdb", "append", mac, "dev", vx, "dst", there.vtep])
    return client, server


# The least state a pipeline with stateful policy and Services keeps: every
# packet in a conntrack zone, established flows accepted before any rule.
CONNTRACK_ONLY = """table inet {table} {{
  chain pre_raw {{
    type filter hook prerouting priority raw; policy accept;
    ct zone set {zone}
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
  }}
}}
"""


def bare_conntrack(tb: Testbed, client: Pod, server: Pod, zone: int, on: bool) -> None:
    """Turn conntrack alone on (or off) on the nodes of a bare path (`bare_vxlan`)."""
    table = f"{tb.prefix}ct".replace("-", "_")
    for node in (client.node, server.node):
        if on:
            run_in(node.ipu_ns, ["nft", "-f", "-"], stdin=CONNTRACK_ONLY.format(table=table, zone=zone))
        else:
            run_in(node.ipu_ns, ["nft", "delete", "table", "inet", table])
