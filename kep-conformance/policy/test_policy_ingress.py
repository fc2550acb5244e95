"""NetworkPolicyIngress and NetworkPolicyPerNetwork (provisional profile).

KEP-3698 requirement 21: a PodNetwork attachment may provide NetworkPolicy.
The upstream netpol model (x/{a,b,c}, y/{a,b,c}) on secondary network P,
two nodes; each case applies policies, compares the whole table, and clears
them. Every table keeps cells the policy does not touch: the positive controls.
"""

from __future__ import annotations

from typing import Any

import pytest

from suite.connectivity import TableLog
from suite.netpol import Model, peer, selecting
from suite.pods import ALT_PORT, HTTP_PORT

pytestmark = pytest.mark.feature("NetworkPolicyIngress")

INGRESS = ["Ingress"]


def spec(pod: str | None, ingress: list[dict[str, Any]]) -> dict[str, Any]:
    return {"podSelector": selecting(pod), "policyTypes": INGRESS, "ingress": ingress}


def test_baseline_all_pods_reach_each_other(m: Model, tables: TableLog) -> None:
    m.check(tables, "test_baseline_all_pods_reach_each_other", "no policy", lambda c, t: True)


def test_deny_all_ingress_in_a_namespace(m: Model, tables: TableLog) -> None:
    m.policy("deny-all", "x", spec(None, []))
    m.check(tables, "test_deny_all_ingress_in_a_namespace", "deny all ingress in x",
            lambda c, t: not t.startswith("x/"))


def test_pod_selector_peer(m: Model, tables: TableLog) -> None:
    m.policy("allow-b", "x", spec("a", [{"from": [peer(pod="b")]}]))
    m.check(tables, "test_pod_selector_peer", "x/a allows from pod=b in x",
            lambda c, t: t != "x/a" or c == "x/b")


def test_namespace_selector_peer(m: Model, tables: TableLog) -> None:
    m.policy("allow-y", "x", spec("a", [{"from": [peer(ns="y")]}]))
    m.check(tables, "test_namespace_selector_peer", "x/a allows from namespace y",
            lambda c, t: t != "x/a" or c.startswith("y/"))


def test_both_selectors_in_one_peer_is_and(m: Model, tables: TableLog) -> None:
    m.policy("allow-y-b", "x", spec("a", [{"from": [peer(ns="y", pod="b")]}]))
    m.check(tables, "test_both_selectors_in_one_peer_is_and", "x/a allows from y/b only (one peer)",
            lambda c, t: t != "x/a" or c == "y/b")


def test_two_peers_are_or(m: Model, tables: TableLog) -> None:
    m.policy("allow-y-or-b", "x", spec("a", [{"from": [peer(ns="y"), peer(pod="b")]}]))
    m.check(tables, "test_two_peers_are_or", "x/a allows from namespace y or x/b (two peers)",
            lambda c, t: t != "x/a" or c.startswith("y/") or c == "x/b")


@pytest.mark.parametrize("port", [HTTP_PORT, ALT_PORT])
def test_port_rule(m: Model, tables: TableLog, port: int) -> None:
    m.policy("alt-only", "x", spec("a", [{"from": [peer(ns="x"), peer(ns="y")],
                                          "ports": [{"protocol": "TCP", "port": ALT_PORT}]}]))
    m.check(tables, f"test_port_rule[{port}]", f"x/a allows TCP {ALT_PORT} only", lambda c, t: t != "x/a" or
            port == ALT_PORT, port=port)


def test_update_converges(m: Model, tables: TableLog) -> None:
    m.policy("changing", "x", spec("a", []))
    m.check(tables, "test_update_converges", "x/a denies all", lambda c, t: t != "x/a")
    m.replace("changing", "x", spec("a", [{"from": [peer(pod="c")]}]))
    m.check(tables, "test_update_converges", "after the update: x/a allows from x/c",
            lambda c, t: t != "x/a" or c == "x/c")


def test_delete_restores(m: Model, tables: TableLog) -> None:
    m.policy("deny-all", "x", spec(None, []))
    m.check(tables, "test_delete_restores", "deny all ingress in x", lambda c, t: not t.startswith("x/"))
    m.delete("deny-all", "x")
    m.check(tables, "test_delete_restores", "after deleting it", lambda c, t: True)


@pytest.mark.feature("NetworkPolicyPerNetwork")
@pytest.mark.parametrize("network", ["P", "Q"])
def test_policy_on_one_network_leaves_the_other_alone(m: Model, tables: TableLog, network: str) -> None:
    m.policy("deny-all-on-p", "x", spec(None, []), network="P")
    expect = (lambda c, t: not t.startswith("x/")) if network == "P" else (lambda c, t: True)
    m.check(tables, f"test_policy_on_one_network_leaves_the_other_alone[{network}]",
            "deny all ingress in x, bound to network P", expect, network=network)
