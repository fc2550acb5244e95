"""DualStack: IPv4 and IPv6 on one secondary network (the options file's
dualStack template), across two nodes: each pod gets one address of each
family in the template's subnets, holds both on its interface, and every pod
reaches every other over each family, seen by its own address.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from suite import status as status_mod
from suite.binding import Binding
from suite.connectivity import TableLog, Target, reach
from suite.options import RunOptions
from suite.pods import NetRequest
from suite.topology import Topology, topology
from suite.verdicts import Rules

pytestmark = pytest.mark.feature("DualStack")


@pytest.fixture(scope="module")
def dual(api: client.ApiClient, new_api: Callable[[], client.ApiClient], binding: Binding,
         run_options: RunOptions, params_namespace: Callable[[], str], two_nodes: list[str]) -> Iterator[Topology]:
    with topology(api, new_api, binding, run_options, params_namespace, two_nodes) as t:
        net = t.network("D", "dualStack")
        ns = t.namespace("kep-dual")
        for i in range(3):
            t.pod(f"d{i}", ns, i, [NetRequest(net, interface="net1")])
        t.ready()
        yield t


def test_each_pod_gets_one_address_per_family_in_the_subnets(dual: Topology) -> None:
    template = dual.networks.template("dualStack")
    for label, pod in dual.pods.items():
        attached = status_mod.on(dual.probes.attachments(pod), dual.nets["D"])
        for version in (4, 6):
            mine = [i.ip for i in attached.ips if i.version == version]
            assert len(mine) == 1, f"{label}: IPv{version} addresses {mine} (expected exactly one)"
            subnet = template.family_subnet(version)
            if subnet is not None:
                assert mine[0] in subnet, f"{label}: {mine[0]} is outside {subnet}"
        iface = dual.probes.interfaces(pod).get(attached.interface)
        assert iface is not None, f"{label}: no interface {attached.interface} inside the pod"
        held = {i.ip for i in iface.addresses}
        assert set(attached.addresses()) <= held, f"{label}: {attached.interface} holds {held}"


@pytest.mark.parametrize("version", [4, 6])
def test_every_pod_reaches_every_other_over_each_family(
    dual: Topology, rules: Rules, tables: TableLog, version: int,
) -> None:
    net = dual.nets["D"]
    members = list(dual.pods)
    table = reach(dual.probes, f"IPv{version} on dual-stack network {net}: reaches, seen by its own address",
                  {m: dual.pods[m] for m in members}, {m: Target(dual.addr(m, net, version)) for m in members},
                  {(c, t): True for c in members for t in members}, rules,
                  seen_as={m: dual.addr(m, net, version) for m in members})
    tables.check(f"test_every_pod_reaches_every_other_over_each_family[{version}]", table)
