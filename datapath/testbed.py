"""Emulated nodes for tests, benchmarks and the local cluster.

Each node is a "host" network namespace and an "ipu" namespace; pods are
namespaces whose veth peers (representors) end in their node's ipu namespace,
as VF representors do on a real IPU. The ipu namespaces are joined by an
underlay bridge in a namespace of its own. Every name starts with `prefix`, so
cleanup removes exactly what was made here.
"""

from __future__ import annotations

import ipaddress
import subprocess
import uuid
from dataclasses import dataclass, field

from datapath.ports import NetworkId, PortAttachment

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


@dataclass(frozen=True)
class Pod:
    name: str
    netns: str
    node: Node
    attachment: PortAttachment

    @property
    def ip(self) -> str:
        return self.attachment.ips[0].split("/")[0]


@dataclass
class Testbed:
    prefix: str
    underlay_cidr: str = "10.254.0.0/24"
    namespaces: list[str] = field(default_factory=list)
    nodes: dict[str, Node] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)
    _links: int = 0

    def __post_init__(self) -> None:
        if len(self.prefix) > 6:
            raise ValueError("prefix: at most 6 characters (link names are limited to 15)")
        self.underlay_ns = f"{self.prefix}underlay"
        self._netns(self.underlay_ns)
        self.bridge = f"{self.prefix}ubr"
        sh("ip", "-n", self.underlay_ns, "link", "add", self.bridge, "type", "bridge")
        sh("ip", "-n", self.underlay_ns, "link", "set", self.bridge, "mtu", str(UNDERLAY_MTU), "up")

    def _netns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def _link(self, kind: str) -> str:
        self._links += 1
        return f"{self.prefix}{kind}{self._links}"

    def add_node(self, name: str) -> Node:
        host, ipu = f"{self.prefix}{name}-host", f"{self.prefix}{name}-ipu"
        self._netns(host)
        self._netns(ipu)
        hosts = list(ipaddress.IPv4Network(self.underlay_cidr).hosts())
        vtep = str(hosts[len(self.nodes)])
        plen = ipaddress.IPv4Network(self.underlay_cidr).prefixlen
        # Underlay: ipu namespace <-> underlay bridge.
        outer = self._link("u")
        sh("ip", "-n", self.underlay_ns, "link", "add", outer, "type", "veth", "peer", "name", UNDERLAY_LINK,
           "netns", ipu)
        sh("ip", "-n", self.underlay_ns, "link", "set", outer, "mtu", str(UNDERLAY_MTU), "master", self.bridge, "up")
        sh("ip", "-n", ipu, "link", "set", UNDERLAY_LINK, "mtu", str(UNDERLAY_MTU))
        sh("ip", "-n", ipu, "addr", "add", f"{vtep}/{plen}", "dev", UNDERLAY_LINK)
        sh("ip", "-n", ipu, "link", "set", UNDERLAY_LINK, "up")
        # Host <-> ipu: the host's own uplink passes through its IPU.
        sh("ip", "-n", host, "link", "add", "uplink", "type", "veth", "peer", "name", "host0", "netns", ipu)
        sh("ip", "-n", host, "link", "set", "uplink", "up")
        sh("ip", "-n", ipu, "link", "set", "host0", "up")
        node = self.nodes[name] = Node(name, host, ipu, vtep)
        return node

    def add_pod(self, node: Node, name: str, network_id: int, cidr: str, network: str = "",
                namespace: str = "default", interface: str = "net1", extra_routes: tuple[str, ...] = ()) -> Pod:
        """A pod namespace with one secondary interface on `network_id`; on-link
        routes for its subnet and `extra_routes` (e.g. the network's service range)."""
        netns = f"{self.prefix}{name}"
        self._netns(netns)
        rep = self._link("r")
        sh("ip", "-n", netns, "link", "add", interface, "type", "veth", "peer", "name", rep, "netns", node.ipu_ns)
        sh("ip", "-n", netns, "addr", "add", cidr, "dev", interface)
        sh("ip", "-n", netns, "link", "set", interface, "up")
        for route in extra_routes:
            sh("ip", "-n", netns, "route", "add", route, "dev", interface)
        mac = _mac_in(netns, interface)
        attachment = PortAttachment(
            pod_uid=str(uuid.uuid4()), namespace=namespace, pod_name=name, network=network or f"net{network_id}",
            network_id=NetworkId(network_id), interface=interface, representor=rep, ips=(cidr,), mac=mac, mtu=1500,
        )
        pod = self.pods[name] = Pod(name, netns, node, attachment)
        return pod

    def close(self) -> None:
        for name in reversed(self.namespaces):
            sh("ip", "netns", "del", name, check=False)
        self.namespaces.clear()

    def __enter__(self) -> "Testbed":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _mac_in(netns: str, link: str) -> str:
    out = sh("ip", "-n", netns, "-br", "link", "show", link)
    return out.split()[2]


# --- the IPU target per node --------------------------------------------------


@dataclass
class Target:
    node: Node
    address: str
    process: subprocess.Popen[bytes]
    log_path: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_target(node: Node, port: int, prefix: str, log_path: str, python: str,
                 sizes: dict[str, int] | None = None) -> Target:
    """Run `multinet ipu` for the node (listening on 127.0.0.1:port of the caller's namespace)."""
    argv = [python, "-m", "multinet.cli", "ipu", "--netns", node.ipu_ns, "--port", str(port),
            "--prefix", prefix, "--vtep", node.vtep, "--underlay", UNDERLAY_LINK]
    for table, size in (sizes or {}).items():
        argv += ["--size", f"{table}={size}"]
    log = open(log_path, "ab")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    return Target(node, f"127.0.0.1:{port}", process, log_path)


# --- traffic between pods -------------------------------------------------------


class TcpServer:
    """A TCP server in a pod namespace answering each connection with its name
    and keeping the connection open until the peer closes it."""

    def __init__(self, netns: str, port: int, reply: str) -> None:
        import socket
        import threading

        from datapath.netns import call_in

        def make() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))
            s.listen(64)
            return s

        self.sock = call_in(netns, make)
        self.reply = reply.encode()
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: "socket.socket") -> None:  # type: ignore[name-defined]  # noqa: F821
        with conn:
            try:
                while True:
                    data = conn.recv(4096)
                    if not data:
                        return
                    conn.sendall(self.reply + b":" + data)
            except OSError:
                return

    def close(self) -> None:
        import socket

        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def tcp_connect(netns: str, dst: str, port: int, timeout: float = 2.0,
                source_port: int = 0) -> "socket.socket | None":  # type: ignore[name-defined]  # noqa: F821
    """A connected socket from the pod namespace, or None if the connection fails."""
    import socket

    from datapath.netns import call_in

    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if source_port:
            s.bind(("0.0.0.0", source_port))
        return s

    s = call_in(netns, make)
    s.settimeout(timeout)
    try:
        s.connect((dst, port))
    except OSError:
        s.close()
        return None
    return s


def tcp_ask(netns: str, dst: str, port: int, timeout: float = 2.0) -> str | None:
    """Connect, send one line, return the server's name (None if blocked)."""
    s = tcp_connect(netns, dst, port, timeout)
    if s is None:
        return None
    with s:
        try:
            return talk(s)
        except OSError:
            return None


def talk(s: "socket.socket") -> str:  # type: ignore[name-defined]  # noqa: F821
    s.sendall(b"hi")
    return s.recv(4096).decode().split(":")[0]
