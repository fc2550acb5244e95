"""An agent restart and the datapath, through the processes: `multinet agent`
programs a real `multinet ipu`. A pod whose namespace went while no agent
listened (its DEL was taken as done) loses its entries in the target once the
agent is back; a live pod keeps its entries throughout the restart."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from agent.plan import link_name
from datapath.client.p4rt import P4RuntimeClient
from datapath.entries import Exact
from tests.agent.conftest import node_with_target
from tests.support.cni import TEST_PREFIX as PREFIX
from tests.support.cni import Node, alloc, run
from tests.support.wait import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.netns]


@pytest.fixture(scope="module")
def ipu_node(api: client.ApiClient, crds: list[str], kubeconfig: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, str]]:
    with node_with_target(api, kubeconfig, tmp_path_factory.mktemp("restart-dp"), "10.244.79.0/24") as found:
        yield found


def representors(address: str) -> set[str]:
    """The representors the target's port table holds (a P4Runtime Read)."""
    reader = P4RuntimeClient(address)
    reader.open()
    try:
        keys = [dict(e.match)["port"] for e in reader.read() if e.table == "port"]
    finally:
        reader.close()
    assert all(isinstance(k, Exact) for k in keys), keys
    return {str(k.value) for k in keys if isinstance(k, Exact)}


def test_a_pod_gone_while_no_agent_listened_leaves_the_target_and_a_live_one_stays(
        ipu_node: tuple[Node, str]) -> None:
    node, address = ipu_node
    network = node.objects.network(f"{PREFIX}-rst-{secrets.token_hex(2)}", {
        "topology": "L2", "ipv4": {"subnet": "10.37.0.0/24", "gateway": "10.37.0.1"}})
    pods = {}
    for tag, address_ in (("gone", "10.37.0.5/24"), ("alive", "10.37.0.6/24")):
        pod_ns, pod, container = node.netns.new("pod"), node.pod(tag, [alloc(network, "net1", [address_])]), \
            f"ctr{secrets.token_hex(4)}"
        wait_for(f"the ADD of {tag} (the agent reaches the target)",
                 lambda: node.cni("ADD", pod_ns, pod, container).exit == 0, timeout=60)
        pods[tag] = (pod_ns, pod, container)
    gone, alive = (link_name(PREFIX, pods[t][2], "net1") for t in ("gone", "alive"))
    assert {gone, alive} <= representors(address)

    # Read the target all through the restart: the live pod's port must never leave it.
    reads: list[set[str]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            reads.append(representors(address))
    watcher = threading.Thread(target=watch)
    node.agent.stop()
    run("ip", "netns", "del", pods["gone"][0])
    watcher.start()
    try:
        node.agent.start()
        wait_for("the gone pod's port to leave the target", lambda: gone not in representors(address), timeout=60)
    finally:
        done.set()
        watcher.join()
    assert reads and all(alive in seen for seen in reads), [sorted(seen) for seen in reads if alive not in seen]
    assert alive in representors(address)
    assert node.cni("DEL", *pods["alive"]).exit == 0
    wait_for("the live pod's port to leave on its DEL", lambda: alive not in representors(address), timeout=30)
