"""The agent survives restarts: DEL and CHECK work from its records, an ADD cut
short by a kill leaves nothing once the agent is back, an ADD whose caller was
killed undoes itself, and concurrent ADD/DEL of many pods stay consistent."""

from __future__ import annotations

import json
import secrets
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agent.plan import link_name
from tests.support.cni import TEST_PREFIX as PREFIX
from tests.support.cni import Node, alloc, cni_env, link, run
from tests.support.wait import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.netns]


def records(node: Node) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in node.agent.state_dir.glob("*.json")]


def test_killed_mid_add_leaves_nothing_after_restart(node: Node, networks: dict[str, str]) -> None:
    pod_ns = node.netns.new("pod")
    pod = node.pod("crash", [alloc(networks["a"], "net1", ["10.31.0.81/24"]), alloc(networks["b"], "net2", ["10.32.0.81/32"])])
    container = f"ctr{secrets.token_hex(4)}"
    node.agent.stop()
    # The hook makes the agent die right after the links exist, before the
    # record says the ADD is complete: what a kill -9 at that moment does.
    node.agent.start("--crash-at", "links")
    try:
        result = node.cni("ADD", pod_ns, pod, container)
        assert result.exit != 0 and result.out["code"] == 11
        assert node.agent.wait_exit() == 137
        # Half-made: the interfaces exist and the record is still "adding".
        assert link(pod_ns, "net1") is not None and link(pod_ns, "net2") is not None
        assert link(node.ipu, link_name(PREFIX, container, "net1")) is not None
        assert [r["phase"] for r in records(node) if r["containerID"] == container] == ["adding"]
    finally:
        node.agent.stop()
        node.agent.start()
    for name in ("eth0", "net1", "net2"):
        assert link(pod_ns, name) is None
    assert link(node.ipu, link_name(PREFIX, container, "net1")) is None
    assert link(node.host, link_name(PREFIX, container, "eth0")) is None
    assert not [r for r in records(node) if r["containerID"] == container]
    # The runtime retries the ADD (code 11 said so), and it now succeeds.
    result = node.cni("ADD", pod_ns, pod, container)
    assert result.exit == 0, result.out
    assert node.cni("DEL", pod_ns, pod, container).exit == 0


def test_add_whose_caller_left_undoes_itself(node: Node, networks: dict[str, str]) -> None:
    """A runtime that kills the plugin mid-ADD (its timeout, or a kubelet killed
    while containerd runs the sandbox) counts the ADD failed, and the DEL it
    sends may overtake the ADD in the agent: the ADD, done, must undo itself."""
    pod_ns = node.netns.new("pod")
    pod = node.pod("left", [alloc(networks["a"], "net1", ["10.31.0.84/24"])])
    container = f"ctr{secrets.token_hex(4)}"
    # The shim's frame on the agent's socket, then the caller is gone before the answer.
    frame = {"env": cni_env("ADD", container, pod_ns, pod=pod), "stdin": json.dumps(node.agent.conf())}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(node.agent.socket))
        sock.sendall(json.dumps(frame).encode())
        sock.shutdown(socket.SHUT_WR)
    wait_for("the agent to log the abandoned ADD undone",
             lambda: f"ADD of {container}/eth0: its caller left" in node.agent.log.read_text(), timeout=30)
    assert not [r for r in records(node) if r["containerID"] == container]
    assert link(pod_ns, "net1") is None and link(pod_ns, "eth0") is None
    assert link(node.ipu, link_name(PREFIX, container, "net1")) is None
    assert link(node.host, link_name(PREFIX, container, "eth0")) is None
    # The runtime's retry (or its DEL) then finds a clean slate.
    assert node.cni("DEL", pod_ns, pod, container).exit == 0
    result = node.cni("ADD", pod_ns, pod, container)
    assert result.exit == 0, result.out
    assert node.cni("DEL", pod_ns, pod, container).exit == 0


def test_attachments_of_namespaces_gone_while_no_agent_listened_are_undone_at_start(
        node: Node, networks: dict[str, str]) -> None:
    """A DEL that found no agent (a rolling update) was taken as done and the
    runtime removed the namespace: the next agent drops what it still holds.
    A runtime unmounts the namespace before it removes the file, so a file
    left unmounted counts as gone too; a live pod's attachment stays."""
    made, results = {}, {}
    for tag, address in (("deleted", "10.31.0.85/24"), ("unmounted", "10.31.0.86/24"), ("alive", "10.31.0.87/24")):
        pod_ns, pod, container = node.netns.new("pod"), node.pod(tag, [alloc(networks["a"], "net1", [address])]), \
            f"ctr{secrets.token_hex(4)}"
        added = node.cni("ADD", pod_ns, pod, container)
        assert added.exit == 0, added.out
        made[tag] = (pod_ns, pod, container)
        results[tag] = added.out
    node.agent.stop()
    run("ip", "netns", "del", made["deleted"][0])
    run("umount", f"/var/run/netns/{made['unmounted'][0]}")
    node.agent.start()
    containers = {r["containerID"]: r["phase"] for r in records(node)}
    assert made["deleted"][2] not in containers and made["unmounted"][2] not in containers
    assert containers[made["alive"][2]] == "ready"
    log = node.agent.log.read_text()
    for tag in ("deleted", "unmounted"):
        assert f"/{made[tag][0]} is gone) of {made[tag][2]}/eth0" in log
        assert node.cni("DEL", *made[tag]).exit == 0  # the runtime's DEL, if it comes again, is done
    pod_ns, pod, container = made["alive"]
    assert node.cni("CHECK", pod_ns, pod, container, prevResult=results["alive"]).exit == 0
    assert node.cni("DEL", pod_ns, pod, container).exit == 0
    assert link(pod_ns, "net1") is None


def test_check_and_del_after_restart(node: Node, networks: dict[str, str]) -> None:
    pod_ns = node.netns.new("pod")
    pod = node.pod("restart", [alloc(networks["a"], "net1", ["10.31.0.91/24"])])
    container = f"ctr{secrets.token_hex(4)}"
    added = node.cni("ADD", pod_ns, pod, container)
    assert added.exit == 0, added.out
    node.agent.stop()
    node.agent.start()
    assert node.cni("CHECK", pod_ns, pod, container, prevResult=added.out).exit == 0
    assert node.cni("DEL", pod_ns, pod, container, prevResult=added.out).exit == 0
    assert link(pod_ns, "net1") is None and link(node.ipu, link_name(PREFIX, container, "net1")) is None


def test_concurrent_add_and_del(node: Node, networks: dict[str, str]) -> None:
    count = 12
    spaces = [node.netns.new("pod") for _ in range(count)]
    pods = [node.pod(f"many{i}", [alloc(networks["a"], "net1", [f"10.31.0.{100 + i}/24"])]) for i in range(count)]
    containers = [f"ctr{secrets.token_hex(4)}" for _ in range(count)]
    with ThreadPoolExecutor(max_workers=count) as pool:
        added = list(pool.map(lambda i: node.cni("ADD", spaces[i], pods[i], containers[i]), range(count)))
    assert all(r.exit == 0 for r in added), [r.out for r in added if r.exit]
    eth0_ips = {ip["address"] for r in added for ip in r.out["ips"] if ip["address"].startswith("10.244.")}
    assert len(eth0_ips) == count  # the node's pod range never hands out one address twice
    for i in range(count):
        assert "10.31.0.%d/24" % (100 + i) in link(spaces[i], "net1").addresses
    with ThreadPoolExecutor(max_workers=count) as pool:
        deleted = list(pool.map(lambda i: node.cni("DEL", spaces[i], pods[i], containers[i]), range(count)))
    assert all(r.exit == 0 for r in deleted)
    assert not [r for r in records(node) if r["containerID"] in containers]
    assert all(link(node.ipu, link_name(PREFIX, c, "net1")) is None for c in containers)
