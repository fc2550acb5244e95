"""The agent hands every veth attachment to the Datapath (datapath/ports.py)
and takes it back on DEL; a datapath failure fails the whole ADD.

The agent runs in-process here, fed by its real apiserver caches, so the test
can plug in a Datapath. This recorder stands where the P4Runtime datapath
will be wired by `multinet agent`; it is the seam's caller-side contract, not
a stand-in for something that runs here.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support import cni as testing
from agent.verbs import Agent, NodeConfig
from agent.kube import KubePods
from kube import Kube
from agent.plan import link_name, stable_mac
from tests.support.cni import TEST_PREFIX as PREFIX
from tests.support.cni import alloc, link
from datapath.ports import PortAttachment

pytestmark = [pytest.mark.cluster, pytest.mark.netns]


class RecordingDatapath:
    def __init__(self, fail_on: str = "") -> None:
        self.attached: list[PortAttachment] = []
        self.detached: list[PortAttachment] = []
        self.fail_on = fail_on

    def attach(self, port: PortAttachment) -> None:
        if port.interface == self.fail_on:
            raise RuntimeError(f"cannot program {port.representor}")
        self.attached.append(port)

    def detach(self, port: PortAttachment) -> None:
        self.detached.append(port)


@pytest.fixture(scope="module")
def cluster(api: client.ApiClient, crds: list[str]) -> Iterator[dict[str, Any]]:
    objects = testing.ClusterObjects(api, PREFIX)
    netns = testing.Namespaces(PREFIX)
    pods = None
    try:
        node_name = objects.node()
        tag = secrets.token_hex(2)
        network = objects.network(f"{PREFIX}-dp-{tag}", {
            "topology": "L2", "mtu": 1420, "ipv4": {"subnet": "10.35.0.0/24", "gateway": "10.35.0.1"}})
        pods = KubePods(Kube(api), node_name)
        pods.start()
        assert pods.wait_synced(30)
        yield {"objects": objects, "netns": netns, "node": node_name, "namespace": objects.namespace(),
               "network": network, "pods": pods}
    finally:
        if pods is not None:
            pods.stop()
        objects.close()
        netns.close()


def make_agent(cluster: dict[str, Any], tmp_path: Path, datapath: RecordingDatapath) -> tuple[Agent, str]:
    ipu = cluster["netns"].new("ipu")
    config = NodeConfig(node=cluster["node"], state_dir=tmp_path / "state", ipu_netns=ipu,
                        host_netns=cluster["netns"].new("host"), link_prefix=PREFIX,
                        pod_cidr=ipaddress.IPv4Network("10.244.78.0/24"))
    return Agent(config, cluster["pods"], None, datapath), ipu


def request(command: str, container: str, netns: str, pod: tuple[str, str, str]) -> tuple[dict[str, Any], str]:
    env = testing.cni_env(command, container, netns, pod=pod)
    return env, json.dumps({"cniVersion": "1.1.0", "name": "multinet", "type": "multinet-cni"})


def test_ports_attached_and_detached(cluster: dict[str, Any], tmp_path: Path) -> None:
    datapath = RecordingDatapath()
    agent, ipu = make_agent(cluster, tmp_path, datapath)
    pod_ns = cluster["netns"].new("pod")
    allocation = alloc(cluster["network"], "net1", ["10.35.0.7/24"])
    uid = cluster["objects"].pod(cluster["namespace"], "dp", cluster["node"], [allocation])
    pod = (cluster["namespace"], "dp", uid)
    container = f"ctr{secrets.token_hex(4)}"
    code, out = agent.handle(*request("ADD", container, pod_ns, pod))
    assert code == 0, out
    assert datapath.attached == [PortAttachment(
        pod_uid=uid, namespace=pod[0], pod_name="dp", network=cluster["network"],
        network_id=allocation["networkId"], interface="net1", representor=link_name(PREFIX, container, "net1"),
        ips=("10.35.0.7/24",), mac=stable_mac(container, "net1"), mtu=1420, gateways=("10.35.0.1",))]
    assert link(ipu, datapath.attached[0].representor) is not None
    code, out = agent.handle(*request("DEL", container, pod_ns, pod))
    assert code == 0, out
    assert datapath.detached == datapath.attached


def test_datapath_failure_rolls_back_the_add(cluster: dict[str, Any], tmp_path: Path) -> None:
    datapath = RecordingDatapath(fail_on="net1")
    agent, ipu = make_agent(cluster, tmp_path, datapath)
    pod_ns = cluster["netns"].new("pod")
    uid = cluster["objects"].pod(cluster["namespace"], "dpfail", cluster["node"],
                                 [alloc(cluster["network"], "net1", ["10.35.0.8/24"])])
    container = f"ctr{secrets.token_hex(4)}"
    code, out = agent.handle(*request("ADD", container, pod_ns, (cluster["namespace"], "dpfail", uid)))
    assert code != 0 and "cannot program" in out["msg"]
    assert link(pod_ns, "net1") is None and link(pod_ns, "eth0") is None
    assert link(ipu, link_name(PREFIX, container, "net1")) is None
    assert list((tmp_path / "state").glob("*.json")) == []


def test_del_after_the_pod_namespace_is_gone(cluster: dict[str, Any], tmp_path: Path) -> None:
    datapath = RecordingDatapath()
    agent, ipu = make_agent(cluster, tmp_path, datapath)
    pod_ns = cluster["netns"].new("pod")
    uid = cluster["objects"].pod(cluster["namespace"], "gone", cluster["node"],
                                 [alloc(cluster["network"], "net1", ["10.35.0.9/24"])])
    pod = (cluster["namespace"], "gone", uid)
    container = f"ctr{secrets.token_hex(4)}"
    assert agent.handle(*request("ADD", container, pod_ns, pod))[0] == 0
    testing.run("ip", "netns", "del", pod_ns)
    cluster["netns"].made.remove(pod_ns)
    code, out = agent.handle(*request("DEL", container, pod_ns, pod))
    assert code == 0, out
    assert datapath.detached == datapath.attached
    assert link(ipu, link_name(PREFIX, container, "net1")) is None
    assert list((tmp_path / "state").glob("*.json")) == []
