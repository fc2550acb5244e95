"""OverlappingSubnets: KEP-3698 "PodNetworks may have overlapping subnets across them".

Networks O1 and O2 get the same subnet (the options file's overlapping pair).
A pod of each holds the same address X; every other pod dials X and must be
answered by its own network's owner, never the other one, on either node.
The cells naming the own network's owner are the positive controls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from suite.binding import Binding
from suite.connectivity import TableLog, Target, reach
from suite.options import RunOptions
from suite.pods import NetRequest
from suite.topology import Topology, topology
from suite.twins import IP, twins
from suite.verdicts import Rules

pytestmark = pytest.mark.feature("OverlappingSubnets")

@pytest.fixture(scope="module")
def overlap(api: client.ApiClient, new_api: Callable[[], client.ApiClient], binding: Binding,
            run_options: RunOptions, params_namespace: Callable[[], str],
            two_nodes: list[str]) -> Iterator[Topology]:
    with topology(api, new_api, binding, run_options, params_namespace, two_nodes) as t:
        ns = t.namespace("kep-ovl")
        for index, key in enumerate(("O1", "O2")):
            net = t.network(key, "overlapping", index)
            for i in range(3):  # three pods per network, on both nodes
                t.pod(f"{key.lower()}-{i}", ns, i, [NetRequest(net, interface="ovl")])
        t.ready()
        yield t


def _shared(t: Topology) -> tuple[IP, str, str]:
    """An address held on both networks, and its owner on each."""
    common = twins(t, "O1", "O2")
    if not common:
        held = {key: [str(t.addr(label, net)) for label in t.on(net)] for key, net in t.nets.items()}
        pytest.skip(f"the two networks gave their pods no common address ({held}): nothing overlaps to test")
    return common[0]


def test_each_pod_reaches_its_own_networks_owner_of_a_shared_address(
    overlap: Topology, rules: Rules, tables: TableLog,
) -> None:
    x, owner1, owner2 = _shared(overlap)
    clients = {label: pod for label, pod in overlap.pods.items() if label not in (owner1, owner2)}
    targets = {f"{x}@O1": Target(x, answer=overlap.pods[owner1].hostname),
               f"{x}@O2": Target(x, answer=overlap.pods[owner2].hostname)}
    expect = {}
    for label in clients:
        mine = "O1" if label.startswith("o1") else "O2"
        for column in targets:
            expect[(label, column)] = column.endswith(mine)
    table = reach(overlap.probes, f"overlapping subnets: who answers {x} (owners {owner1} on O1, {owner2} on O2)",
                  clients, targets, expect, rules)
    tables.check("test_each_pod_reaches_its_own_networks_owner_of_a_shared_address", table)
