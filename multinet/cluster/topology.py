"""Node network namespaces and the underlay that joins them.

Each node is a "host" network namespace and an "ipu" namespace between its
pods and the underlay (pods' links end in the ipu namespace, as VF
representors do on a real IPU). The ipu namespaces are joined by an underlay
bridge in a namespace of its own; the host's own uplink passes through its
IPU. Every name starts with `prefix`, so cleanup removes exactly what was
made here, and `namespaces` lists it in the order made.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass, field

UNDERLAY_LINK = "ul0"  # the underlay link's name inside each ipu namespace
# Jumbo underlay, as on real fabrics: the VXLAN devices take the underlay MTU
# minus 50, so 1500-byte pod packets cross nodes without fragmentation (the
# IPU cannot send "fragmentation needed" into a pod's network).
UNDERLAY_MTU = 9000


def sh(*argv: str, check: bool = True) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True)
class Node:
    name: str
    host_ns: str
    ipu_ns: str
    vtep: str  # underlay address inside the ipu namespace


@dataclass
class Topology:
    prefix: str
    underlay_cidr: str = "10.254.0.0/24"
    namespaces: list[str] = field(default_factory=list)
    nodes: dict[str, Node] = field(default_factory=dict)
    _links: int = 0

    def __post_init__(self) -> None:
        if len(self.prefix) > 6:
            raise ValueError("prefix: at most 6 characters (link names are limited to 15)")
        self.underlay_ns = f"{self.prefix}underlay"
        self.add_namespace(self.underlay_ns)
        self.bridge = f"{self.prefix}ubr"
        sh("ip", "-n", self.underlay_ns, "link", "add", self.bridge, "type", "bridge")
        sh("ip", "-n", self.underlay_ns, "link", "set", self.bridge, "mtu", str(UNDERLAY_MTU), "up")

    def add_namespace(self, name: str) -> None:
        """A network namespace with its loopback up, removed by `close`."""
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def link_name(self, kind: str) -> str:
        """A fresh link name of this topology (`kind` is one letter)."""
        self._links += 1
        return f"{self.prefix}{kind}{self._links}"

    def add_node(self, name: str) -> Node:
        host, ipu = f"{self.prefix}{name}-host", f"{self.prefix}{name}-ipu"
        self.add_namespace(host)
        self.add_namespace(ipu)
        underlay = ipaddress.IPv4Network(self.underlay_cidr)
        vtep = str(list(underlay.hosts())[len(self.nodes)])
        # Underlay: ipu namespace <-> underlay bridge.
        outer = self.link_name("u")
        sh("ip", "-n", self.underlay_ns, "link", "add", outer, "type", "veth", "peer", "name", UNDERLAY_LINK,
           "netns", ipu)
        sh("ip", "-n", self.underlay_ns, "link", "set", outer, "mtu", str(UNDERLAY_MTU), "master", self.bridge, "up")
        sh("ip", "-n", ipu, "link", "set", UNDERLAY_LINK, "mtu", str(UNDERLAY_MTU))
        sh("ip", "-n", ipu, "addr", "add", f"{vtep}/{underlay.prefixlen}", "dev", UNDERLAY_LINK)
        sh("ip", "-n", ipu, "link", "set", UNDERLAY_LINK, "up")
        # Host <-> ipu: the host's own uplink passes through its IPU.
        sh("ip", "-n", host, "link", "add", "uplink", "type", "veth", "peer", "name", "host0", "netns", ipu)
        sh("ip", "-n", host, "link", "set", "uplink", "up")
        sh("ip", "-n", ipu, "link", "set", "host0", "up")
        node = self.nodes[name] = Node(name, host, ipu, vtep)
        return node

    def close(self) -> None:
        for name in reversed(self.namespaces):
            sh("ip", "netns", "del", name, check=False)
        self.namespaces.clear()

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
