"""A full P4Runtime table, end to end through the processes: `multinet agent`
programs a real `multinet ipu` whose port table holds one entry (loaded
before the agent connects, as a device's pipeline is, and kept by it). The second
pod's ADD fails with "try again later" naming the full table; its pod and
its PodNetwork get an Event; nothing of the first pod is lost; once the
first pod is gone, the retried ADD succeeds."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from kubernetes import client

from agent.plan import link_name
from datapath.client.p4rt import P4RuntimeClient
from datapath.pipeline import pipeline
from tests.agent.conftest import node_with_target
from tests.support.cni import TEST_PREFIX as PREFIX
from tests.support.cni import Node, alloc, link
from tests.support.wait import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.netns]


@pytest.fixture(scope="module")
def full_node(api: client.ApiClient, crds: list[str], kubeconfig: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, str]]:
    work = tmp_path_factory.mktemp("full")
    with node_with_target(api, kubeconfig, work, "10.244.78.0/24", "--size", "port=1") as (node, address):
        load_pipeline(address, {"port": 1})
        yield node, address


def load_pipeline(address: str, sizes: dict[str, int]) -> None:
    """Load the pipeline with these sizes, as a device's operator does before any controller connects."""
    # Above the agent's election id: the agent may have connected first; it
    # is primary again once the loader leaves (P4Runtime arbitration).
    loader = P4RuntimeClient(address, election_id=1 << 20, pipeline=pipeline(sizes))
    wait_for(f"the target at {address}", lambda: _connects(loader), timeout=60)
    try:
        loader.set_pipeline(reconcile=False)
    finally:
        loader.close()


def _connects(client: P4RuntimeClient) -> bool:
    try:
        client.connect(timeout=2)
    except (grpc.FutureTimeoutError, grpc.RpcError):
        return False
    return True


def entries(address: str) -> list[Any]:
    reader = P4RuntimeClient(address)
    reader.open()
    try:
        return sorted(map(repr, reader.read()))
    finally:
        reader.close()


def events(api: client.ApiClient, namespace: str, name: str) -> list[str]:
    found = client.CoreV1Api(api).list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    return [f"{e.reason}: {e.message}" for e in found.items]


def test_a_full_table_fails_the_add_clearly_and_loses_nothing(full_node: tuple[Node, str],
                                                            api: client.ApiClient) -> None:
    node, address = full_node
    network = node.objects.network(f"{PREFIX}-full-{secrets.token_hex(2)}", {
        "topology": "L2", "ipv4": {"subnet": "10.36.0.0/24", "gateway": "10.36.0.1"}})
    first_ns, second_ns = node.netns.new("pod"), node.netns.new("pod")
    first = node.pod("first", [alloc(network, "net1", ["10.36.0.5/24"])])
    second = node.pod("second", [alloc(network, "net1", ["10.36.0.6/24"])])
    one, two = f"ctr{secrets.token_hex(4)}", f"ctr{secrets.token_hex(4)}"
    tries: list[Any] = []

    def first_add() -> Any:
        tries.append(node.cni("ADD", first_ns, first, one))
        return tries[-1] if tries[-1].exit == 0 else None
    try:
        added = wait_for("the first ADD (the agent reaches the target)", first_add, timeout=60)
    except AssertionError:
        raise AssertionError(f"the first ADD never succeeded; the last answer: {tries[-1:]}") from None
    programmed = entries(address)
    assert any("port" in e for e in programmed), programmed

    refused = node.cni("ADD", second_ns, second, two)
    assert refused.exit == 1 and refused.out["code"] == 11, refused.out
    assert "RESOURCE_EXHAUSTED" in refused.out["msg"] and "port" in refused.out["msg"], refused.out
    assert entries(address) == programmed, "the refused ADD changed what the first pod had"
    assert link(second_ns, "net1") is None and link(node.ipu, link_name(PREFIX, two, "net1")) is None
    wait_for("an Event on the second pod", lambda: any(
        e.startswith("NetworkAttachFailed") and "RESOURCE_EXHAUSTED" in e
        for e in events(api, node.namespace, "second")), timeout=30)
    wait_for("an Event on the PodNetwork", lambda: any(
        e.startswith("DatapathTableFull") and f"{node.namespace}/second" in e
        for e in events(api, "default", network)), timeout=30)

    assert node.cni("DEL", first_ns, first, one, prevResult=added.out).exit == 0
    retried = node.cni("ADD", second_ns, second, two)
    assert retried.exit == 0, retried.out
    assert node.cni("DEL", second_ns, second, two, prevResult=retried.out).exit == 0
