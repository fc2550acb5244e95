"""An address-less attachment through the plugin and the agent: the interface
is made with its MAC and MTU, up, and no address; the CNI result and the
network-status name it with no ips (CNI spec section 5: `ips` lists
addresses, an interface may have none)."""

from __future__ import annotations

import json
import secrets

import pytest
from kubernetes import client

from agent.plan import link_name, stable_mac
from podnetwork.names import NETWORK_STATUS_ANNOTATION, NPWG_NETWORK_STATUS_ANNOTATION, READINESS_CONDITION
from podnetwork.params import MTU_DEFAULT
from podnetwork.status import parse_network_status
from tests.support.cni import TEST_PREFIX as PREFIX
from tests.support.cni import Node, alloc, link
from tests.support.wait import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.netns]


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_an_address_less_attachment_has_its_mac_and_mtu_and_no_address(node: Node, api: client.ApiClient,
                                                                       version: str) -> None:
    tag = secrets.token_hex(2)
    bare = node.objects.bare_network(f"{PREFIX}-bare-{tag}")
    familyless = node.objects.network(f"{PREFIX}-l2-{tag}", {"topology": "L2", "mtu": 9000})
    pod_ns = node.netns.new("pod")
    pod = node.pod(f"l2-{tag}", [alloc(bare, "net1", []), alloc(familyless, "fh0", [])])
    container = f"ctr{secrets.token_hex(4)}"
    result = node.cni("ADD", pod_ns, pod, container, version)
    assert result.exit == 0, result.out
    assert result.out["cniVersion"] == version

    for name, mtu in (("net1", MTU_DEFAULT), ("fh0", 9000)):
        state = link(pod_ns, name)
        assert state is not None and state.up, (name, state)
        assert (state.kind, state.mtu, state.mac) == ("veth", mtu, stable_mac(container, name))
        # No address of any scope but the link-local one the kernel itself derives.
        assert all(a.startswith("fe80:") for a in state.addresses), (name, state.addresses)
        rep = link(node.ipu, link_name(PREFIX, container, name))
        assert rep is not None and rep.up and rep.mtu == mtu

    out = result.out
    at = {itf["name"]: i for i, itf in enumerate(out["interfaces"])}
    shown: dict[str, object] = {"name": "fh0", "mac": stable_mac(container, "fh0"), "sandbox": f"/var/run/netns/{pod_ns}"}
    if version == "1.1.0":  # an interface's mtu is a CNI 1.1 field
        shown["mtu"] = 9000
    assert out["interfaces"][at["fh0"]] == shown
    assert not [ip for ip in out["ips"] if ip.get("interface") in (at["net1"], at["fh0"])], out["ips"]

    core = client.CoreV1Api(api)

    def attached() -> client.V1Pod | None:
        p = core.read_namespaced_pod(pod[1], pod[0])
        conditions = {c.type: c.status for c in (p.status.conditions if p.status else None) or []}
        return p if conditions.get(READINESS_CONDITION) == "True" else None

    p = wait_for("the pod's readiness condition", attached, timeout=20.0)
    assert p.metadata is not None and p.metadata.annotations is not None
    status = {s.interface_name: s for s in parse_network_status(p.metadata.annotations[NETWORK_STATUS_ANNOTATION])}
    for name, network in (("net1", bare), ("fh0", familyless)):
        assert (status[name].pod_network_name, status[name].ips, status[name].gateways, status[name].mac) == \
            (network, (), (), stable_mac(container, name))
    npwg = {n["interface"]: n for n in json.loads(p.metadata.annotations[NPWG_NETWORK_STATUS_ANNOTATION])}
    assert npwg["fh0"]["ips"] == [] and npwg["fh0"]["mac"] == stable_mac(container, "fh0")

    assert node.cni("DEL", pod_ns, pod, container, version).exit == 0
    assert link(node.ipu, link_name(PREFIX, container, "fh0")) is None
