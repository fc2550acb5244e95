"""Emulated nodes with pods and an IPU target each, for the datapath's tests and benchmarks.

The nodes and underlay are the local cluster's own (`multinet.cluster.topology`);
a test adds pods as namespaces whose veth peers (representors) end in their
node's ipu namespace, and runs `multinet ipu` per node as a process.
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass, field

from datapath.ports import NetworkId, PortAttachment
from multinet.cluster.topology import UNDERLAY_LINK, Node, Topology, sh

__all__ = ["Node", "Pod", "Target", "Testbed", "start_target"]


@dataclass(frozen=True)
class Pod:
    name: str
    netns: str
    node: Node
    attachment: PortAttachment

    @property
    def ip(self) -> str:
        """The pod's first address (IPv4 on a dual-stack pod)."""
        return self.attachment.ips[0].split("/")[0]

    @property
    def ip6(self) -> str:
        """The pod's IPv6 address."""
        return next(a.split("/")[0] for a in self.attachment.ips if ":" in a)


@dataclass
class Testbed(Topology):
    pods: dict[str, Pod] = field(default_factory=dict)

    def add_pod(self, node: Node, name: str, network_id: int, cidr: str | tuple[str, ...], network: str = "",
                namespace: str = "default", interface: str = "net1", extra_routes: tuple[str, ...] = (),
                gateways: tuple[str, ...] = (), mtu: int = 1500) -> Pod:
        """A pod namespace with one secondary interface on `network_id` and the
        address(es) `cidr` (one per family for dual stack, none for an
        address-less network; IPv6 without DAD, as the agent adds them); on-link routes for its subnets and
        `extra_routes` (e.g. the network's service ranges)."""
        netns = f"{self.prefix}{name}"
        cidrs = (cidr,) if isinstance(cidr, str) else cidr
        self.add_namespace(netns)
        rep = self.link_name("r")
        sh("ip", "-n", netns, "link", "add", interface, "type", "veth", "peer", "name", rep, "netns", node.ipu_ns)
        sh("ip", "-n", netns, "link", "set", interface, "mtu", str(mtu))
        for address in cidrs:
            sh("ip", "-n", netns, "addr", "add", address, "dev", interface, *(("nodad",) if ":" in address else ()))
        sh("ip", "-n", netns, "link", "set", interface, "up")
        for route in extra_routes:
            sh("ip", "-n", netns, "route", "add", route, "dev", interface)
        attachment = PortAttachment(
            pod_uid=str(uuid.uuid4()), namespace=namespace, pod_name=name, network=network or f"net{network_id}",
            network_id=NetworkId(network_id), interface=interface, representor=rep, ips=cidrs,
            mac=_mac_in(netns, interface), mtu=mtu, gateways=gateways,
        )
        pod = self.pods[name] = Pod(name, netns, node, attachment)
        return pod


    def flush_neighbours(self, netns: str, interface: str) -> None:
        """Forget what the pod learnt of its neighbours (both families)."""
        sh("ip", "-n", netns, "neigh", "flush", "dev", interface)


def _mac_in(netns: str, link: str) -> str:
    return sh("ip", "-n", netns, "-br", "link", "show", link).split()[2]


@dataclass
class Target:
    """`multinet ipu` for one node, run as a process."""

    node: Node
    address: str
    process: subprocess.Popen[bytes]
    log_path: str
    metrics_url: str | None = None  # its /metrics, when started with a metrics port

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_target(node: Node, port: int, prefix: str, log_path: str, python: str,
                 sizes: dict[str, int] | None = None, metrics_port: int | None = None,
                 extra: tuple[str, ...] = (), tree: str | None = None) -> Target:
    """Run `multinet ipu` for the node (listening on 127.0.0.1:port of the caller's namespace,
    and serving /metrics on metrics_port when given); `tree`: another source tree's
    (its directory comes first on the module path), for a benchmark's before."""
    argv = [python, "-m", "multinet.cli", "ipu", "--netns", node.ipu_ns, "--port", str(port),
            "--prefix", prefix, "--vtep", node.vtep, "--underlay", UNDERLAY_LINK]
    if metrics_port is not None:
        argv += ["--metrics-port", str(metrics_port)]
    for table, size in (sizes or {}).items():
        argv += ["--size", f"{table}={size}"]
    argv += extra
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tree)
    metrics = f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port is not None else None
    return Target(node, f"127.0.0.1:{port}", process, log_path, metrics)
