"""TCP and UDP between pod namespaces of the testbed: servers that name themselves, and clients.

Servers listen on both families (one IPv6 socket that also takes IPv4);
clients pick the family of the address they dial.
"""

from __future__ import annotations

import socket
import threading

from datapath.netns import call_in, run_in
from tests.support.wait import wait_for

__all__ = ["TcpServer", "UdpServer", "link_local", "talk", "tcp_ask", "tcp_connect", "udp_ask", "udp_ask_link_local"]


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _dual_stack(kind: socket.SocketKind, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    return s


class TcpServer:
    """A TCP server in a pod namespace answering each connection with its name
    and keeping the connection open until the peer closes it."""

    def __init__(self, netns: str, port: int, reply: str) -> None:
        def make() -> socket.socket:
            s = _dual_stack(socket.SOCK_STREAM, port)
            s.listen(64)
            return s

        self.sock = call_in(netns, make)
        self.reply = reply.encode()
        self.accepted = 0
        self.peers: list[str] = []  # the source address of each connection, as the server saw it
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.peers.append(str(peer[0]).removeprefix("::ffff:"))
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
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
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class UdpServer:
    """A UDP server in a pod namespace answering each datagram with its name."""

    def __init__(self, netns: str, port: int, reply: str) -> None:
        self.sock = call_in(netns, lambda: _dual_stack(socket.SOCK_DGRAM, port))
        self.reply = reply.encode()
        self.peers: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
                self.peers.append(str(peer[0]).removeprefix("::ffff:"))
                self.sock.sendto(self.reply + b":" + data, peer)
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()


def tcp_connect(netns: str, dst: str, port: int, timeout: float = 2.0, source_port: int = 0) -> socket.socket | None:
    """A connected socket from the pod namespace, or None if the connection fails."""
    def make() -> socket.socket:
        s = socket.socket(_family(dst), socket.SOCK_STREAM)
        if source_port:
            s.bind(("::" if ":" in dst else "0.0.0.0", source_port))
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


def udp_ask(netns: str, dst: str, port: int, timeout: float = 2.0) -> tuple[str, str] | None:
    """Send one datagram from the pod namespace; the server's name and the
    address the reply came from, or None when no reply came."""
    s = call_in(netns, lambda: socket.socket(_family(dst), socket.SOCK_DGRAM))
    s.settimeout(timeout)
    with s:
        try:
            s.sendto(b"hi", (dst, port))
            data, peer = s.recvfrom(4096)
        except OSError:
            return None
    return data.decode().split(":")[0], str(peer[0])


def link_local(netns: str, interface: str) -> str:
    """The interface's IPv6 link-local address, once it is no longer tentative (DAD done)."""
    def find() -> str | None:
        for line in run_in(netns, ["ip", "-6", "-o", "addr", "show", "dev", interface, "scope", "link"]).stdout.splitlines():
            if "tentative" not in line:
                return line.split()[3].split("/")[0]
        return None

    return wait_for(f"a usable link-local address on {interface} in {netns}", find, timeout=10)


def udp_ask_link_local(netns: str, dst: str, interface: str, port: int, timeout: float = 2.0) -> str | None:
    """One datagram to a link-local address on `interface`; the server's name, or None.
    All of it runs in the namespace: the scope (interface index) is the namespace's."""
    def ask() -> str | None:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            try:
                s.sendto(b"hi", (dst, port, 0, socket.if_nametoindex(interface)))
                data, _ = s.recvfrom(4096)
            except OSError:
                return None
        return data.decode().split(":")[0]

    return call_in(netns, ask)


def talk(s: socket.socket) -> str:
    s.sendall(b"hi")
    return s.recv(4096).decode().split(":")[0]
