"""Pure logic: whom the agent tells when its sync loop finds a table full."""

from __future__ import annotations

from datapath.client.full import TableFull
from datapath.entries import ActionCall, Exact, entry, prefix

from agent.sync import full_table_reports


def test_each_named_network_of_a_full_table_report_is_told_as_the_attach_path_tells_it() -> None:
    routes = tuple(entry("route", {"network_id": Exact(n), "dst": prefix("10.7.0.1/32")}, ActionCall("drop"))
                   for n in (7, 8))
    full = TableFull(("route",), routes, (7, 8), "2 entries not programmed: route: table full (2 entries)")
    message = "node node-1: 2 entries not programmed: route: table full (2 entries)"
    assert full_table_reports(full, {7: "fronthaul", 8: "oam"}, "node-1") == [("fronthaul", message),
                                                                                ("oam", message)]
    # A network no pod names has no PodNetwork here to carry an Event: it is logged only.
    assert full_table_reports(full, {8: "oam"}, "node-1") == [("oam", message)]
    assert full_table_reports(full, {}, "node-1") == []
