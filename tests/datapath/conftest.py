"""Fixtures: emulated nodes with a running IPU target each, and clients."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from datapath.client.datapath import P4RuntimeDatapath
from datapath.client.p4rt import P4RuntimeClient, wait_for
from tests.support.testbed import Node, Pod, Target, Testbed, start_target

# Everything these tests create on the machine (namespaces, links, nftables
# tables) starts with PREFIX; a run beside another one picks its own.
PREFIX = os.environ.get("MULTINET_TEST_NETNS_PREFIX", "mndt")
NFT_TABLE = f"{PREFIX}ipu".replace("-", "_")  # the target's nftables table (`Kernel.table`)


def _needs_root() -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if not shutil.which("nft") or not shutil.which("ip"):
        return "needs nft and iproute2"
    return None


netns = pytest.mark.skipif(_needs_root() is not None, reason=_needs_root() or "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Env:
    testbed: Testbed
    logs: Path
    sizes: dict[str, int] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    datapaths: dict[str, P4RuntimeDatapath] = field(default_factory=dict)

    def node(self, name: str) -> Node:
        node = self.testbed.add_node(name)
        self.start(node)
        return node

    def start(self, node: Node) -> Target:
        target = start_target(node, free_port(), PREFIX, str(self.logs / f"{node.name}.log"), sys.executable,
                              self.sizes, metrics_port=free_port())
        wait_for(target.address, timeout=120)  # several runs share a small machine
        self.targets[node.name] = target
        return target

    def datapath(self, node: str, election_id: int = 1) -> P4RuntimeDatapath:
        dp = P4RuntimeDatapath(P4RuntimeClient(self.targets[node].address, election_id=election_id))
        dp.reconnect()
        self.datapaths[node] = dp
        return dp

    def pod(self, node: str, name: str, network_id: int, cidr: str | tuple[str, ...], **kw: object) -> Pod:
        pod = self.testbed.add_pod(self.testbed.nodes[node], name, network_id, cidr, **kw)  # type: ignore[arg-type]
        self.datapaths[node].attach(pod.attachment)
        return pod

    def close(self) -> None:
        for dp in self.datapaths.values():
            dp.client.close()
        for t in self.targets.values():
            t.stop()
        self.testbed.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    reason = _needs_root()
    if reason:
        pytest.skip(reason)
    e = Env(Testbed(PREFIX), tmp_path)
    try:
        yield e
    finally:
        e.close()


@pytest.fixture
def two_nodes(env: Env) -> Env:
    for name in ("n1", "n2"):
        env.node(name)
        env.datapath(name)
    return env
