"""Reachability tables over probe pods, and the log of every table a run printed.

A cell (client, target) reads "connects" only when the right server answered:
the target's own pod name (so a reply from another network's owner of the
same address does not count), and, where the table checks it, the server saw
the client's own address on that network (no SNAT on the way).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from suite.pods import HTTP_PORT
from suite.probes import DialTarget, ProbePod, ProbePods
from suite.truth import Cell, Observation, Seen, TruthTable
from suite.verdicts import Rules, evaluate

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    host: DialTarget
    port: int = HTTP_PORT
    protocol: str = "http"
    answer: str | None = None  # the pod name that must answer; None: any answer counts


def _host_of(client_addr: str) -> str:
    """netexec's /clientip answers Go's RemoteAddr: "10.0.0.5:41234" or "[fd00::5]:41234"."""
    host = client_addr.rsplit(":", 1)[0]
    return host.strip("[]")


def check_answer(obs: Observation, target: Target, seen_as: IP | None) -> Observation:
    if obs.seen is not Seen.CONNECTED:
        return obs
    if seen_as is not None:
        try:
            seen = ipaddress.ip_address(_host_of(obs.detail))
        except ValueError:
            return Observation(Seen.UNKNOWN, f"/clientip answered {obs.detail!r}")
        if seen != seen_as:
            return Observation(Seen.BLOCKED, f"the server saw {seen}, not the client's own {seen_as} (SNAT?)")
    elif target.answer is not None and obs.detail != target.answer:
        return Observation(Seen.BLOCKED, f"answered by {obs.detail!r}, not {target.answer!r}")
    return obs


def reach(probes: ProbePods, title: str, clients: dict[str, ProbePod], targets: dict[str, Target],
          expect: dict[Cell, bool], rules: Rules, seen_as: dict[str, IP] | None = None) -> TruthTable:
    """Judge every cell; with `seen_as` (client -> its address) the server must see that address."""
    table = TruthTable.build(title, clients, targets, expect)

    def probe(cell: Cell) -> Observation:
        client, name = cell
        target = targets[name]
        request = "clientip" if seen_as is not None else "hostname"
        obs = probes.dial(clients[client], target.host, target.port, request, target.protocol)
        return check_answer(obs, target, seen_as[client] if seen_as is not None else None)

    return evaluate(table, probe, rules)


@dataclass
class TableLog:
    """Every truth table of the run, rendered, for the file beside the report."""

    rendered: list[str] = field(default_factory=list)

    def check(self, test: str, table: TruthTable) -> None:
        text = f"[{test}]\n{table.render()}"
        self.rendered.append(text)
        print(text)
        assert not table.mismatches(), "\n" + text

    def text(self) -> str:
        return "\n\n".join(self.rendered) + ("\n" if self.rendered else "")
