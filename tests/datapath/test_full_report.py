"""Pure logic of the sync loop's failure handling: the retry delays and the
report of a full table (which tables, entries and networks)."""

from __future__ import annotations

import pytest
from finsy.proto import rpc_code

from datapath.client.backoff import Backoff
from datapath.client.datapath import port_entries
from datapath.client.full import TableFull, networks_of
from datapath.client.p4rt import INSERT, UpdateError, WriteError
from datapath.entries import ActionCall, Exact, entry, ip, prefix
from datapath.ports import NetworkId, PortAttachment


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_success() -> None:
    b = Backoff(0.1, 1.0)
    assert [b.next() for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    b.reset()
    assert b.next() == 0.1
    with pytest.raises(ValueError, match="first"):
        Backoff(2, 1)


def _port(name: str, net: int, address: str) -> PortAttachment:
    return PortAttachment(f"uid-{name}", "ns", name, f"net{net}", NetworkId(net), "net1", name, (address,),
                          "02:00:00:00:00:01", 1500)


def test_the_networks_of_refused_entries_come_from_their_key_their_port_or_their_policy_group() -> None:
    a, b = _port("repa", 7, "10.7.0.5/24"), _port("repb", 8, "10.8.0.5/24")
    pod = entry("policy_pod", {"network_id": Exact(9), "direction": Exact(0), "pod_ip": Exact(ip("10.9.0.5"))},
                ActionCall("set_group", (42,)))
    rule = entry("policy_rule", {"direction": Exact(0), "group": Exact(42)}, ActionCall("allow"), priority=1)
    desired = [*port_entries(a), *port_entries(b), pod, rule]
    neighbor_b = next(e for e in port_entries(b) if e.table == "neighbor")
    route = entry("route", {"network_id": Exact(11), "dst": prefix("10.11.0.1/32")}, ActionCall("drop"))
    assert networks_of([neighbor_b], desired) == {8}
    assert networks_of([port_entries(a)[0]], desired) == {7}  # the port entry itself
    assert networks_of([rule], desired) == {9}
    assert networks_of([route], desired) == {11}
    stranger = entry("neighbor", {"port": Exact("gone"), "ip": Exact(ip("10.1.1.1"))}, ActionCall("set_dmac", (1,)))
    assert networks_of([stranger], desired) == set()


def test_a_table_full_report_names_only_what_was_refused_for_room() -> None:
    routes = [entry("route", {"network_id": Exact(7), "dst": prefix(f"10.7.0.{i}/32")}, ActionCall("drop"))
              for i in range(1, 5)]
    updates = [(INSERT, e) for e in routes]
    err = WriteError([UpdateError(1, rpc_code.ALREADY_EXISTS, "route: entry already exists"),
                      UpdateError(2, rpc_code.RESOURCE_EXHAUSTED, "route: table full (2 entries)"),
                      UpdateError(3, rpc_code.RESOURCE_EXHAUSTED, "route: table full (2 entries)")], 4, updates)
    full = TableFull.of(err, routes)
    assert full is not None
    assert (full.tables, full.refused, full.networks) == (("route",), (routes[2], routes[3]), (7,))
    assert full.message == "2 entries not programmed: route: table full (2 entries)"
    only_exists = WriteError([UpdateError(1, rpc_code.ALREADY_EXISTS, "route: entry already exists")], 4, updates)
    assert TableFull.of(only_exists, routes) is None
