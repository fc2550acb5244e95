"""Long-lived TCP flows for hack/chaos: on each secondary network an echo
server in one pod and a client in a pod on another node, both run inside the
pods' network namespaces with `multinet cluster exec` (host programs, so the
flow needs nothing of the image and is measured from inside). The client
sends a line every 100 ms over one connection and reports, once a second,
what came back and every gap between echoes longer than 0.3 s."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

PORT = 5201

SERVER = """
import socket, sys, threading
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
def echo(c):
    with c:
        while True:
            try:
                d = c.recv(4096)
            except OSError:
                return
            if not d:
                return
            c.sendall(d)
while True:
    c, _ = s.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
"""

CLIENT = """
import json, socket, sys, time
addr = (sys.argv[1], int(sys.argv[2]))
st = {"sent": 0, "echoed": 0, "reconnects": 0, "gaps": []}
def connect():
    while True:
        try:
            s = socket.create_connection(addr, timeout=1)
            s.settimeout(0.05)
            return s
        except OSError:
            time.sleep(0.2)
s = connect()
last = report = nxt = time.time()
while True:
    now = time.time()
    try:
        if now >= nxt:
            s.sendall(b"%d\\n" % st["sent"])
            st["sent"] += 1
            nxt = max(nxt + 0.1, now)
        try:
            d = s.recv(4096)
        except socket.timeout:
            d = None
        if d == b"":
            raise ConnectionError("closed by the server")
        if d:
            now = time.time()
            if now - last > 0.3:
                st["gaps"].append([round(last, 3), round(now - last, 3)])
            last = now
            st["echoed"] += d.count(b"\\n")
    except OSError:
        s.close()
        st["reconnects"] += 1
        s = connect()
    if now - report >= 1:
        print(json.dumps({**st, "last_echo": last, "now": now}), flush=True)
        report = now
"""


@dataclass
class Flow:
    network: str
    server_pod: str  # namespace/name
    client_pod: str
    server_node: str
    client_node: str
    server_ip: str
    latest: dict[str, Any] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.network}:{self.client_node}->{self.server_node}"

    def start(self, env: dict[str, str]) -> None:
        exec_ = [sys.executable, "-m", "multinet.cli", "cluster", "exec"]
        self.procs.append(subprocess.Popen([*exec_, self.server_pod, "--", "python3", "-c", SERVER,
                                            self.server_ip, str(PORT)], env=env, text=True,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        client = subprocess.Popen([*exec_, self.client_pod, "--", "python3", "-c", CLIENT, self.server_ip,
                                   str(PORT)], env=env, text=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.procs.append(client)
        threading.Thread(target=self._read, args=(client,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                self.latest = json.loads(line)
            except ValueError:
                continue

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def stall(self, since: float, until: float) -> float:
        """The longest time without an echo that overlaps [since, until]."""
        doc = self.latest
        if not doc:
            return until - since
        spans = [(start, start + length) for start, length in doc["gaps"]]
        spans.append((doc["last_echo"], doc["now"]))  # the gap still open at the last report
        worst = 0.0
        for start, end in spans:
            if end >= since and start <= until:
                worst = max(worst, end - start)
        return round(worst, 3)

    def summary(self) -> dict[str, Any]:
        doc = self.latest
        gaps = [length for _, length in doc.get("gaps", [])]
        open_gap = doc["now"] - doc["last_echo"] if doc else 0.0
        return {"flow": self.name, "network": self.network, "client_node": self.client_node,
                "server_node": self.server_node, "lines_sent": doc.get("sent", 0),
                "lines_echoed": doc.get("echoed", 0), "reconnects": doc.get("reconnects", 0),
                "stalls_over_0.3s": len(gaps), "longest_stall_s": round(max([open_gap, *gaps]), 3),
                "running": bool(self.procs) and all(p.poll() is None for p in self.procs)}
