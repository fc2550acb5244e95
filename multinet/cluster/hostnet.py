"""A real node's own networking: its host namespace reaches the underlay
through its IPU, and the machine reaches every node and pod.

A node's underlay address is both its InternalIP (kubelet's `--node-ip`, in
the host namespace, where kubelet and the pods' eth0 host side live) and its
VXLAN endpoint (in the ipu namespace, where the IPU target terminates the
tunnels), as on a host whose IPU offloads its tunnels. The ipu namespace
therefore splits what arrives for that address: VXLAN (UDP 4789) is its own,
everything else is the host's and goes up the host's uplink. Policy rules do
the split ahead of the `local` table; the host's uplink is a point-to-point
veth with static link-local next hops on both ends.

The default network (eth0, the reference bridge plugin in the host
namespace) routes each node's pod range to that node over the underlay, as
kindnet does on kind. The machine's own namespace gets an address on the
underlay (the apiserver's, for kubelets and pods) and a route to every
node's pod range (the apiserver's pod proxy).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Sequence

from multinet.cluster.processes import ComponentError

HOST_UPLINK, IPU_HOST_LINK, UNDERLAY_LINK = "uplink", "host0", "ul0"  # as multinet.cluster.topology makes them
IPU_HOP = "169.254.0.1"  # the ipu end of the uplink, as the host's next hop (never assigned)
HOST_HOP = "169.254.0.2"  # the host end, as the ipu's next hop towards the host (never assigned)
HOST_TABLE = 200  # ipu routing table: the node's address is the host's
VXLAN_PORT = 4789
# Rule priorities in the ipu namespace: ours, then `local` (moved from 0), all
# ahead of the IPU target's own `iif` rules at 1000.
PRIO_TUNNEL, PRIO_HOST, PRIO_LOCAL = 10, 20, 100
SERVICE_TABLE = "multinet_node"  # nftables table in the host namespace


class HostNetError(ComponentError):
    pass


def run(argv: Sequence[str], stdin: str | None = None) -> str:
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise HostNetError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def ip_batch(netns: str | None, commands: Iterable[str]) -> None:
    """Run `ip` commands in one process (in `netns`, or the machine's namespace)."""
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    run([*prefix, "-batch", "-"], "\n".join(commands) + "\n")


def mac_of(netns: str, link: str) -> str:
    return str(json.loads(run(["ip", "-n", netns, "-j", "link", "show", link]))[0]["address"])


def sysctl(netns: str, values: dict[str, str]) -> None:
    """Per-namespace sysctls (net.*): nsenter keeps /sys as it is, unlike `ip netns exec`."""
    argv = ["nsenter", f"--net=/run/netns/{netns}", "--", "sysctl", "-q", "-w"]
    run(argv + [f"{k}={v}" for k, v in values.items()])


def wire_node(host_ns: str, ipu_ns: str, node_ip: str, pod_cidr: str) -> None:
    """The host's uplink through its IPU, for its address and its pod range."""
    host_mac, ipu_mac = mac_of(host_ns, HOST_UPLINK), mac_of(ipu_ns, IPU_HOST_LINK)
    ip_batch(host_ns, [
        f"address add {node_ip}/32 dev {HOST_UPLINK}",
        f"neighbour replace {IPU_HOP} lladdr {ipu_mac} dev {HOST_UPLINK} nud permanent",
        f"route add default via {IPU_HOP} dev {HOST_UPLINK} onlink src {node_ip}",
    ])
    sysctl(ipu_ns, {
        "net.ipv4.ip_forward": "1",
        # The host's packets carry the node's address, which is also the ipu's own.
        f"net.ipv4.conf.{IPU_HOST_LINK}.accept_local": "1",
        f"net.ipv4.conf.{IPU_HOST_LINK}.rp_filter": "0",
        # ARP for the node's address is routed by the rules above (to the
        # host), so the ipu answers it on the underlay as a proxy, at once.
        f"net.ipv4.conf.{UNDERLAY_LINK}.proxy_arp": "1",
        f"net.ipv4.neigh.{UNDERLAY_LINK}.proxy_delay": "0",
    })
    ip_batch(ipu_ns, [
        f"neighbour replace {HOST_HOP} lladdr {host_mac} dev {IPU_HOST_LINK} nud permanent",
        f"route add {node_ip}/32 via {HOST_HOP} dev {IPU_HOST_LINK} onlink table {HOST_TABLE}",
        f"route add {pod_cidr} via {HOST_HOP} dev {IPU_HOST_LINK} onlink",
        f"rule add priority {PRIO_TUNNEL} iif {UNDERLAY_LINK} ipproto udp dport {VXLAN_PORT} lookup local",
        f"rule add priority {PRIO_HOST} iif {UNDERLAY_LINK} to {node_ip}/32 lookup {HOST_TABLE}",
        f"rule add priority {PRIO_LOCAL} lookup local",
        "rule del priority 0 lookup local",
    ])


def route_peers(ipu_ns: str, peers: Iterable[tuple[str, str]]) -> None:
    """Routes in a node's ipu namespace to the other nodes' pod ranges: (pod CIDR, node address)."""
    commands = [f"route replace {cidr} via {node_ip} dev {UNDERLAY_LINK}" for cidr, node_ip in peers]
    if commands:
        ip_batch(ipu_ns, commands)


def attach_machine(underlay_ns: str, bridge: str, link: str, address: str, mtu: int) -> None:
    """A veth from the machine's namespace into the underlay bridge, holding `address`
    (CIDR). Deleting the underlay namespace deletes it with its routes."""
    peer = f"{link}b"
    ip_batch(None, [
        f"link add {link} mtu {mtu} type veth peer name {peer} mtu {mtu} netns {underlay_ns}",
        f"address add {address} dev {link}",
        f"link set {link} up",
    ])
    ip_batch(underlay_ns, [f"link set {peer} master {bridge} up"])


def route_machine(link: str, routes: Iterable[tuple[str, str]]) -> None:
    """Routes in the machine's namespace to each node's pod range: (pod CIDR, node address)."""
    ip_batch(None, [f"route replace {cidr} via {node_ip} dev {link}" for cidr, node_ip in routes])


def kubernetes_service(host_ns: str, service_ip: str, apiserver: str, port: int) -> None:
    """The `kubernetes` Service's ClusterIP (443) leads to the apiserver, for pods
    and host-network pods with in-cluster config. There is no kube-proxy on
    these nodes; this one DNAT stands in for it for this one Service."""
    rule = f"ip daddr {service_ip} tcp dport 443 dnat to {apiserver}:{port}"
    run(["nsenter", f"--net=/run/netns/{host_ns}", "--", "nft", "-f", "-"], f"""
table ip {SERVICE_TABLE} {{
  chain prerouting {{ type nat hook prerouting priority -100; policy accept; {rule}; }}
  chain output {{ type nat hook output priority -100; policy accept; {rule}; }}
}}
""")
