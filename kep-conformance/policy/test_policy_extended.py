"""Extended NetworkPolicy features on a secondary network (provisional profile):
named ports, egress, ipBlock with except, and what a policy with no network
binding does (the options file's policy.unbound: "default" or "none" leave
secondary networks alone, "all" applies it on every network of the pods)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from suite.connectivity import TableLog
from suite.netpol import Model, peer, selecting
from suite.pods import ALT_PORT, HTTP_PORT


def ingress(pod: str | None, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"podSelector": selecting(pod), "policyTypes": ["Ingress"], "ingress": rules}


@pytest.mark.feature("NetworkPolicyNamedPorts")
@pytest.mark.parametrize("port", [HTTP_PORT, ALT_PORT])
def test_named_port_rule(m: Model, tables: TableLog, port: int) -> None:
    m.policy("alt-by-name", "x", ingress("a", [{"from": [peer(ns="x"), peer(ns="y")],
                                                "ports": [{"protocol": "TCP", "port": "alt"}]}]))
    m.check(tables, f"test_named_port_rule[{port}]", f"x/a allows its port named alt ({ALT_PORT}) only",
            lambda c, t: t != "x/a" or port == ALT_PORT, port=port)


@pytest.mark.feature("NetworkPolicyEgress")
def test_egress_deny_with_one_allow(m: Model, tables: TableLog) -> None:
    m.policy("egress-to-b", "x", {"podSelector": selecting("a"), "policyTypes": ["Egress"],
                                  "egress": [{"to": [peer(pod="b")]}]})
    m.check(tables, "test_egress_deny_with_one_allow", "x/a may only send to x/b",
            lambda c, t: c != "x/a" or t == "x/b")


@pytest.mark.feature("NetworkPolicyIPBlock")
def test_ip_block_with_except(m: Model, tables: TableLog) -> None:
    net = m.topo.nets["P"]
    addresses = [m.topo.addr(label, net) for label in m.labels]
    # The smallest IPv4 block holding every pod's address on P, minus y/b's.
    block = ipaddress.ip_network(f"{addresses[0]}/32")
    while not all(a in block for a in addresses):
        block = block.supernet()
    excluded = ipaddress.ip_network(f"{m.topo.addr('y/b', net)}/32")
    m.policy("from-block", "x", ingress("a", [{"from": [{"ipBlock": {"cidr": str(block),
                                                                     "except": [str(excluded)]}}]}]))
    m.check(tables, "test_ip_block_with_except", f"x/a allows from {block} except {excluded} (y/b)",
            lambda c, t: t != "x/a" or c != "y/b")


@pytest.mark.feature("NetworkPolicyUnbound")
def test_policy_without_a_network_binding(m: Model, tables: TableLog) -> None:
    m.policy("unbound-deny-all", "x", ingress(None, []), network=None)
    applies = m.binding.policy_unbound == "all"
    m.check(tables, "test_policy_without_a_network_binding",
            f"deny all ingress in x, no network named (declared: {m.binding.policy_unbound})",
            lambda c, t: not (applies and t.startswith("x/")))
