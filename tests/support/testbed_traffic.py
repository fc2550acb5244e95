"""TCP between pod namespaces of the testbed: a server that names itself, and clients."""

from __future__ import annotations

import socket
import threading

from datapath.netns import call_in

__all__ = ["TcpServer", "talk", "tcp_ask", "tcp_connect"]


class TcpServer:
    """A TCP server in a pod namespace answering each connection with its name
    and keeping the connection open until the peer closes it."""

    def __init__(self, netns: str, port: int, reply: str) -> None:
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
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
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


def tcp_connect(netns: str, dst: str, port: int, timeout: float = 2.0, source_port: int = 0) -> socket.socket | None:
    """A connected socket from the pod namespace, or None if the connection fails."""
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


def talk(s: socket.socket) -> str:
    s.sendall(b"hi")
    return s.recv(4096).decode().split(":")[0]
