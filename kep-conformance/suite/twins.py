"""The same TCP connection on two networks with overlapping subnets.

A client address and source port talking to one server address and port is
one connection on one network. On two networks whose subnets overlap, pods of
each can hold the same addresses, and the same connection opened on both is
two connections that must not meet: an implementation that tracks both in one
table (one conntrack zone for both) takes the second for the first, so state
one network's traffic earned lets the other's through.

The probes use OpenBSD netcat, as the stock agnhost image has it, to choose
the source port (`-p`), and ask netexec on the connection for `/hostname`
(who answers) and `/clientip` (the address and port it sees, which proves the
port was the one asked for).
"""

from __future__ import annotations

import ipaddress
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from suite.pods import HTTP_PORT
from suite.topology import Topology
from suite.transport import CommandError

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

# By path: a busybox shell runs its own nc applet for a bare `nc`, which does not bind -p.
NC = "/usr/bin/nc"
IDLE_SECONDS = 10  # nc gives up on a connection silent this long (-w)
HOLD_SECONDS = 6  # how long a held connection stays idle before it sends its requests (< IDLE_SECONDS)
REQUESTS = ("printf 'GET /hostname HTTP/1.1\\r\\nHost: kep\\r\\n\\r\\n"
            "GET /clientip HTTP/1.1\\r\\nHost: kep\\r\\nConnection: close\\r\\n\\r\\n'")


def twins(t: Topology, first: str, second: str) -> list[tuple[IP, str, str]]:
    """Each address held on both networks (keys of `t.nets`), with its owner on each."""
    held = {key: {t.addr(label, t.nets[key]): label for label in t.on(t.nets[key])} for key in (first, second)}
    common = sorted(set(held[first]) & set(held[second]), key=str)
    return [(x, held[first][x], held[second][x]) for x in common]


@dataclass(frozen=True)
class Pair:
    """Two clients with one address on one node (both connections pass one node's
    tracking) and two servers with another shared address."""

    client: IP
    server: IP
    clients: tuple[str, str]  # the client's owner on each network
    servers: tuple[str, str]


def pair(t: Topology, first: str, second: str) -> Pair | str:
    """The pods to test with, or why the topology has none."""
    found = twins(t, first, second)
    same_node = [(x, a, b) for x, a, b in found if t.pods[a].node == t.pods[b].node]
    if not same_node:
        return f"no address is held on both networks by two pods of one node ({found})"
    client, c1, c2 = same_node[0]
    servers = [(x, a, b) for x, a, b in found if x != client]
    if not servers:
        return f"only one address is held on both networks ({found}): no twin server"
    server, s1, s2 = servers[0]
    return Pair(client, server, (c1, c2), (s1, s2))


@dataclass(frozen=True)
class Outcome:
    port: int
    held: str  # what the first network's held connection got, after the twin
    twin: str  # what the second network's connection got, while the first was open


def run(t: Topology, p: Pair) -> Outcome:
    """The first network's connection opens and stays idle; the second's twin
    connection opens and asks; then the first asks on its open connection."""
    port = random.randrange(40000, 60000)
    dial = f"{NC} -w {IDLE_SECONDS} -p {port} {p.server} {HTTP_PORT}"

    def shell(label: str, command: str) -> str:
        pod = t.pods[label]
        try:
            return t.probes.transport.shell(pod.namespace, pod.name, command)
        except CommandError as err:  # nc gave up or was refused: what it said is the outcome
            return str(err)

    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(shell, p.clients[0], f"(sleep {HOLD_SECONDS}; {REQUESTS}; sleep 2) | {dial}")
        time.sleep(HOLD_SECONDS / 3)  # the held connection is open by now (its connect is immediate)
        twin = shell(p.clients[1], f"{REQUESTS} | {dial}")
        return Outcome(port, held.result(), twin)


def saw_port(p: Pair, outcome: Outcome, text: str) -> bool:
    """Whether netexec saw the client's address with the chosen source port."""
    return f"{p.client}:{outcome.port}" in text
