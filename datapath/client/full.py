"""A table running full, as one report: which tables, which entries were left
out and which networks they serve.

The target refuses an INSERT into a full table with RESOURCE_EXHAUSTED
(P4Runtime 12.2, target/store.py) and applies the rest of the batch; the
client raises `WriteError`. Both writers of the node's state (a port's
attach and the sync loop's rounds) turn that into this one report, and the
agent tells the networks' owners (`Reporter.table_full`: an Event on each
PodNetwork named).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from datapath.client.p4rt import WriteError
from datapath.entries import Entry, Exact


@dataclass(frozen=True)
class TableFull:
    tables: tuple[str, ...]  # the full tables, sorted
    refused: tuple[Entry, ...]  # the entries the target did not take
    networks: tuple[int, ...]  # the network ids those entries serve, sorted (where one is known)
    message: str  # one line for an Event

    @classmethod
    def of(cls, err: WriteError, desired: Iterable[Entry]) -> TableFull | None:
        """The report of a failed write, or None when no update was refused for a full table."""
        refused = err.refused()
        if not refused:
            return None
        tables = tuple(sorted({e.table for e in refused}))
        reasons = "; ".join(sorted(set(err.full_tables)))
        return cls(tables, tuple(refused), tuple(sorted(networks_of(refused, desired))),
                   f"{len(refused)} entries not programmed: {reasons}")


def networks_of(refused: Iterable[Entry], desired: Iterable[Entry]) -> set[int]:
    """The networks the entries serve: their `network_id` key; for a port's
    own entry its action's network; for entries keyed by port (neighbours,
    the source guard) the network the desired `port` entry joins; for policy
    rules the network of the desired `policy_pod` entries naming their group."""
    ports: dict[object, int] = {}
    groups: dict[object, int] = {}
    for e in desired:
        if e.table == "port" and e.actions:
            ports[_value(e.get("port"))] = int(e.actions[0].params[0])
        elif e.table.startswith("policy_pod") and e.actions and isinstance(net := e.get("network_id"), Exact):
            groups[e.actions[0].params[0]] = int(net.value)
    out: set[int] = set()
    for e in refused:
        found = _network(e, ports, groups)
        if found is not None:
            out.add(found)
    return out


def _network(e: Entry, ports: dict[object, int], groups: dict[object, int]) -> int | None:
    net = e.get("network_id")
    if isinstance(net, Exact):
        return int(net.value)
    if e.table == "port":
        return int(e.actions[0].params[0]) if e.actions else None
    group = e.get("group")
    if isinstance(group, Exact):
        return groups.get(group.value)
    port = e.get("port")
    return ports.get(port.value) if isinstance(port, Exact) else None


def _value(m: object) -> object:
    return m.value if isinstance(m, Exact) else None
