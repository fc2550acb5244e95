"""The agent end to end: the plugin binary invoked as a runtime does, the agent
in its own process, pods in the real apiserver, interfaces in real namespaces."""

from __future__ import annotations

import ipaddress
import json
import secrets
from typing import Any

import pytest
from kubernetes import client

from agent import links
from tests.support import cni as testing
from tests.support.wait import wait_for
from agent.plan import link_name, stable_mac
from podnetwork.names import NETWORK_STATUS_ANNOTATION, NPWG_NETWORK_STATUS_ANNOTATION, READINESS_CONDITION
from tests.support.cni import TEST_PREFIX as PREFIX
from tests.support.cni import Node, alloc, link

pytestmark = [pytest.mark.cluster, pytest.mark.netns]
PLUGIN = testing.plugin_binary()


def add(node: Node, netns: str, pod: tuple[str, str, str], container: str, version: str = "1.1.0") -> testing.PluginResult:
    return node.cni("ADD", netns, pod, container, version)


def verb(node: Node, command: str, netns: str, pod: tuple[str, str, str], container: str,
         version: str = "1.1.0", **conf: Any) -> testing.PluginResult:
    return node.cni(command, netns, pod, container, version, **conf)


def routes(netns: str, family: str = "-4") -> list[str]:
    out = testing.run("ip", "-n", netns, "-j", family, "route", "show", "table", "main").stdout
    return sorted(f"{r['dst']} {r.get('gateway', '-')} {r['dev']}" for r in json.loads(out))


def test_three_secondary_networks(node: Node, networks: dict[str, str], api: client.ApiClient) -> None:
    pod_ns = node.netns.new("pod")
    pod = node.pod("three", [
        alloc(networks["a"], "net1", ["10.31.0.5/24", "fd31::5/64"], gw4=True, gw6=True),
        alloc(networks["b"], "fast", ["10.32.4.7/32"]),
        alloc(networks["c"], "net3", ["10.33.0.9/24"]),
    ])
    container = f"ctr{secrets.token_hex(4)}"
    result = add(node, pod_ns, pod, container)
    assert result.exit == 0, result.out
    out = result.out
    assert out["cniVersion"] == "1.1.0"

    # Exactly eth0 and the three requested interfaces, nothing else, in the pod.
    with links.rtnl(pod_ns) as ipr:
        names = sorted(l.get_attr("IFLA_IFNAME") for l in ipr.link("dump"))
    assert names == ["eth0", "fast", "lo", "net1", "net3"]

    net1, fast, net3, eth0 = (link(pod_ns, n) for n in ("net1", "fast", "net3", "eth0"))
    assert net1 and fast and net3 and eth0
    assert (net1.kind, net1.mtu, net1.mac) == ("veth", 1400, stable_mac(container, "net1"))
    assert {"10.31.0.5/24", "fd31::5/64"} <= net1.addresses
    assert (fast.kind, fast.mtu) == ("veth", 1450) and "10.32.4.7/32" in fast.addresses
    assert (net3.kind, net3.mtu) == ("macvlan", 1300) and "10.33.0.9/24" in net3.addresses
    assert eth0.addresses & {f"10.244.77.{i}/32" for i in range(2, 255)}

    v4 = routes(pod_ns)
    # The default route is on the attachment marked isDefaultGW4, not on eth0.
    assert "default 10.31.0.1 net1" in v4
    assert not any(r.startswith("default") and r.endswith("eth0") for r in v4)
    assert "10.96.31.0/24 10.31.0.1 net1" in v4  # the network's service range
    assert "10.32.0.0/16 10.32.0.1 fast" in v4  # an L3 network's /32 needs its subnet routed
    assert "10.33.0.0/24 - net3" in v4
    assert "default fd31::1 net1" in routes(pod_ns, "-6")

    # Representors end in the IPU namespace, up, with the network's MTU.
    rep = link(node.ipu, link_name(PREFIX, container, "net1"))
    assert rep is not None and rep.up and rep.mtu == 1400
    assert link(node.ipu, link_name(PREFIX, container, "fast")) is not None

    # The result names every pod interface with its addresses.
    by_name = {itf["name"]: i for i, itf in enumerate(out["interfaces"])}
    assert out["interfaces"][by_name["net1"]]["sandbox"] == f"/var/run/netns/{pod_ns}"
    assert out["interfaces"][by_name["net1"]]["mtu"] == 1400
    ips = {(ip["address"], ip["interface"]) for ip in out["ips"]}
    assert ("10.31.0.5/24", by_name["net1"]) in ips and ("10.33.0.9/24", by_name["net3"]) in ips

    # Status written back to the pod; the readiness condition set.
    core = client.CoreV1Api(api)

    def reported() -> Any:
        p = core.read_namespaced_pod(pod[1], pod[0])
        conditions = {c.type: c.status for c in (p.status.conditions if p.status is not None else None) or []}
        return p if conditions.get(READINESS_CONDITION) == "True" else None

    p = wait_for("the pod's readiness condition", reported, timeout=20.0)
    status = json.loads(p.metadata.annotations[NETWORK_STATUS_ANNOTATION])
    assert [s["interfaceName"] for s in status] == ["eth0", "net1", "fast", "net3"]
    assert status[1]["default"] is True and status[0]["default"] is False
    assert status[1]["mac"] == stable_mac(container, "net1")
    npwg = json.loads(p.metadata.annotations[NPWG_NETWORK_STATUS_ANNOTATION])
    assert npwg[1]["name"] == f"{pod[0]}/{networks['a']}" and npwg[1]["ips"] == ["10.31.0.5", "fd31::5"]

    assert verb(node, "DEL", pod_ns, pod, container).exit == 0


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_check_then_tamper_then_del(node: Node, networks: dict[str, str], version: str) -> None:
    pod_ns = node.netns.new("pod")
    pod = node.pod(f"check-{version.replace('.', '')}", [alloc(networks["a"], "net1", ["10.31.0.20/24"])])
    container = f"ctr{secrets.token_hex(4)}"
    result = add(node, pod_ns, pod, container, version)
    assert result.exit == 0, result.out
    assert result.out["cniVersion"] == version
    if version == "0.4.0":
        assert all("version" in ip for ip in result.out["ips"])
    prev = result.out

    assert verb(node, "CHECK", pod_ns, pod, container, version, prevResult=prev).exit == 0

    testing.run("ip", "-n", pod_ns, "addr", "del", "10.31.0.20/24", "dev", "net1")
    failed = verb(node, "CHECK", pod_ns, pod, container, version, prevResult=prev)
    assert failed.exit != 0
    assert failed.out["code"] >= 100 and "10.31.0.20/24" in failed.out["msg"]

    rep = link_name(PREFIX, container, "net1")
    assert verb(node, "DEL", pod_ns, pod, container, version, prevResult=prev).exit == 0
    assert link(pod_ns, "net1") is None and link(pod_ns, "eth0") is None
    assert link(node.ipu, rep) is None
    assert link(node.host, link_name(PREFIX, container, "eth0")) is None
    assert list(node.agent.state_dir.glob("*.json")) == [] or all(
        json.loads(p.read_text())["containerID"] != container for p in node.agent.state_dir.glob("*.json")
    )
    # DEL again, and DEL of something never added, both succeed.
    assert verb(node, "DEL", pod_ns, pod, container, version).exit == 0
    assert verb(node, "DEL", "", pod, f"never{secrets.token_hex(3)}", version).exit == 0
    # CHECK of an attachment that no longer exists: container unknown.
    gone = verb(node, "CHECK", pod_ns, pod, container, version, prevResult=prev)
    assert gone.out["code"] == 3


def test_two_pods_on_one_network_ping(node: Node, networks: dict[str, str]) -> None:
    ns1, ns2 = node.netns.new("pod"), node.netns.new("pod")
    pod1 = node.pod("ping1", [alloc(networks["a"], "net1", ["10.31.0.41/24"])])
    pod2 = node.pod("ping2", [alloc(networks["a"], "net1", ["10.31.0.42/24"])])
    c1, c2 = f"ctr{secrets.token_hex(4)}", f"ctr{secrets.token_hex(4)}"
    assert add(node, ns1, pod1, c1).exit == 0
    assert add(node, ns2, pod2, c2).exit == 0
    # The test acts as the datapath here: it joins the two representors on a
    # bridge in the IPU namespace. The P4Runtime datapath does this for real.
    bridge = f"{PREFIX}br{secrets.token_hex(2)}"
    testing.run("ip", "-n", node.ipu, "link", "add", bridge, "type", "bridge")
    for c in (c1, c2):
        testing.run("ip", "-n", node.ipu, "link", "set", link_name(PREFIX, c, "net1"), "master", bridge)
    testing.run("ip", "-n", node.ipu, "link", "set", bridge, "up")
    try:
        assert testing.ping(ns1, "10.31.0.42")
        assert verb(node, "DEL", ns2, pod2, c2).exit == 0
        assert not testing.ping(ns1, "10.31.0.42", count=1, wait=1.0)  # gone with its interfaces
    finally:
        testing.run("ip", "-n", node.ipu, "link", "del", bridge, check=False)
        verb(node, "DEL", ns1, pod1, c1)


def test_gc_removes_only_stale_attachments(node: Node, networks: dict[str, str]) -> None:
    ns1, ns2 = node.netns.new("pod"), node.netns.new("pod")
    pod1 = node.pod("gc1", [alloc(networks["a"], "net1", ["10.31.0.51/24"])])
    pod2 = node.pod("gc2", [alloc(networks["a"], "net1", ["10.31.0.52/24"])])
    keep, stale = f"ctr{secrets.token_hex(4)}", f"ctr{secrets.token_hex(4)}"
    assert add(node, ns1, pod1, keep).exit == 0
    assert add(node, ns2, pod2, stale).exit == 0
    gc_conf = node.agent.conf(**{"cni.dev/valid-attachments": [{"containerID": keep, "ifname": "eth0"}]})
    result = testing.invoke(PLUGIN, {"CNI_COMMAND": "GC", "CNI_PATH": "/usr/lib/cni"}, gc_conf)
    assert result.exit == 0 and result.out == {}
    assert link(ns1, "net1") is not None and link(node.ipu, link_name(PREFIX, keep, "net1")) is not None
    assert link(ns2, "net1") is None and link(node.ipu, link_name(PREFIX, stale, "net1")) is None
    # GC of another network name leaves this network's attachments alone.
    other = dict(gc_conf, name="othernet")
    other["cni.dev/valid-attachments"] = []
    assert testing.invoke(PLUGIN, {"CNI_COMMAND": "GC", "CNI_PATH": "/usr/lib/cni"}, other).exit == 0
    assert link(ns1, "net1") is not None
    assert verb(node, "DEL", ns1, pod1, keep).exit == 0


def test_failed_add_rolls_back_everything(node: Node, networks: dict[str, str], api: client.ApiClient) -> None:
    pod_ns = node.netns.new("pod")
    # The second interface's name already exists in the pod: its creation fails
    # after eth0 and net1 were made, and everything must go.
    testing.run("ip", "-n", pod_ns, "link", "add", "net2", "type", "veth", "peer", "name", "mncx0")
    pod = node.pod("rollback", [
        alloc(networks["a"], "net1", ["10.31.0.61/24"]),
        alloc(networks["b"], "net2", ["10.32.0.61/32"]),
    ])
    container = f"ctr{secrets.token_hex(4)}"
    result = add(node, pod_ns, pod, container)
    assert result.exit != 0 and result.out["code"] >= 100
    assert link(pod_ns, "eth0") is None and link(pod_ns, "net1") is None
    assert link(node.ipu, link_name(PREFIX, container, "net1")) is None
    assert link(node.host, link_name(PREFIX, container, "eth0")) is None
    assert link(pod_ns, "net2") is not None  # not ours: left alone
    core = client.CoreV1Api(api)
    wait_for("a NetworkAttachFailed Event", lambda: [
        e for e in core.list_namespaced_event(pod[0]).items
        if e.involved_object.name == pod[1] and e.reason == "NetworkAttachFailed"], timeout=20.0)


def test_unsupported_or_missing_params_fail_cleanly(node: Node, networks: dict[str, str]) -> None:
    pod_ns = node.netns.new("pod")
    pod = node.pod("noparams", [alloc(f"{PREFIX}-missing", "net1", ["10.31.0.70/24"])])
    result = add(node, pod_ns, pod, f"ctr{secrets.token_hex(4)}")
    assert result.exit != 0 and result.out["code"] == 11 and "missing" in result.out["msg"]
    bad = node.pod("badalloc", [{"podNetworkName": networks["a"], "interfaceName": "net1", "networkId": 1,
                                 "ips": ["10.31.0.71"], "isDefaultGW4": False, "isDefaultGW6": False}])
    result = add(node, pod_ns, bad, f"ctr{secrets.token_hex(4)}")
    assert result.exit != 0 and result.out["code"] == 7 and "allocations[0].ips[0]" in result.out["msg"]
    assert link(pod_ns, "eth0") is None


def test_pod_without_secondary_networks(node: Node) -> None:
    pod_ns = node.netns.new("pod")
    pod = node.pod("plain", None)
    container = f"ctr{secrets.token_hex(4)}"
    result = add(node, pod_ns, pod, container)
    assert result.exit == 0, result.out
    assert "0.0.0.0/0" in {r["dst"] for r in result.out["routes"]}
    assert any(r.startswith("default 10.244.77.1 eth0") for r in routes(pod_ns))
    ip = ipaddress.ip_interface(next(ip["address"] for ip in result.out["ips"]))
    assert ip.ip in ipaddress.ip_network("10.244.77.0/24") and ip.network.prefixlen == 32
    assert verb(node, "DEL", pod_ns, pod, container).exit == 0


def test_chained_add_passes_prev_result_on(node: Node, networks: dict[str, str]) -> None:
    pod_ns = node.netns.new("pod")
    pod = node.pod("chained", [alloc(networks["a"], "net1", ["10.31.0.99/24"])])
    container = f"ctr{secrets.token_hex(4)}"
    earlier = {"cniVersion": "1.1.0", "interfaces": [{"name": "lo0", "sandbox": f"/var/run/netns/{pod_ns}"}],
               "ips": [{"address": "192.0.2.1/32", "interface": 0}], "dns": {"nameservers": ["192.0.2.53"]}}
    result = verb(node, "ADD", pod_ns, pod, container, prevResult=earlier)
    assert result.exit == 0, result.out
    assert result.out["interfaces"][0]["name"] == "lo0"
    assert {"address": "192.0.2.1/32", "interface": 0} in result.out["ips"]
    assert result.out["dns"] == {"nameservers": ["192.0.2.53"]}
    net1 = next(i for i, itf in enumerate(result.out["interfaces"]) if itf["name"] == "net1")
    assert {"address": "10.31.0.99/24", "interface": net1, "gateway": "10.31.0.1"} in result.out["ips"]
    # CHECK looks only at what multinet made (lo0 is not in the namespace).
    assert verb(node, "CHECK", pod_ns, pod, container, prevResult=result.out).exit == 0
    assert verb(node, "DEL", pod_ns, pod, container).exit == 0



def test_attachment_parameters_win_over_the_network(node: Node, networks: dict[str, str]) -> None:
    tag = secrets.token_hex(2)
    own = node.objects.params(f"{PREFIX}-att-{tag}", {"topology": "L2", "mtu": 1360,
                                                        "ipv4": {"subnet": "10.31.0.0/24", "gateway": "10.31.0.254"}})
    with_params = node.objects.attachment(node.namespace, f"{PREFIX}-own-{tag}", networks["a"], own)
    plain = node.objects.attachment(node.namespace, f"{PREFIX}-plain-{tag}", networks["a"], None)
    pod_ns = node.netns.new("pod")
    pod = node.pod("attach", [
        alloc(networks["a"], "net1", ["10.31.0.111/24"], gw4=True, attachment=with_params),
        alloc(networks["a"], "net2", ["10.31.0.112/24"], attachment=plain),
    ])
    container = f"ctr{secrets.token_hex(4)}"
    result = add(node, pod_ns, pod, container)
    assert result.exit == 0, result.out
    assert link(pod_ns, "net1").mtu == 1360  # the attachment's NetworkParams
    assert link(pod_ns, "net2").mtu == 1400  # the PodNetwork's
    assert "default 10.31.0.254 net1" in routes(pod_ns)
    assert verb(node, "DEL", pod_ns, pod, container).exit == 0
    missing = node.pod("attach-missing", [alloc(networks["a"], "net1", ["10.31.0.113/24"], attachment="nope")])
    failed = add(node, node.netns.new("pod"), missing, f"ctr{secrets.token_hex(4)}")
    assert failed.out["code"] == 11 and "PodNetworkAttachment" in failed.out["msg"]


def test_add_twice_is_an_error_and_keeps_the_first(node: Node, networks: dict[str, str]) -> None:
    # Spec 2, ADD: an interface of the requested name that already exists in
    # the container is an error; the first ADD's interfaces stay.
    pod_ns = node.netns.new("pod")
    pod = node.pod("twice", [alloc(networks["a"], "net1", ["10.31.0.121/24"])])
    container = f"ctr{secrets.token_hex(4)}"
    first = add(node, pod_ns, pod, container)
    assert first.exit == 0, first.out
    again = add(node, pod_ns, pod, container)
    assert again.exit != 0 and again.out["code"] == 100 and "eth0" in again.out["msg"]
    assert link(pod_ns, "eth0") is not None and link(pod_ns, "net1") is not None
    assert link(node.ipu, link_name(PREFIX, container, "net1")) is not None
    assert verb(node, "DEL", pod_ns, pod, container).exit == 0
    assert link(pod_ns, "eth0") is None and link(pod_ns, "net1") is None


def test_chained_after_the_plugin_that_made_eth0(node: Node, networks: dict[str, str]) -> None:
    # Spec 3: multinet later in a conflist, after a plugin that made CNI_IFNAME
    # (its prevResult says so). multinet adds its attachments and leaves eth0,
    # its addresses and (unless an attachment is the default) its routes alone.
    pod_ns = node.netns.new("pod")
    peer = f"{PREFIX}e{secrets.token_hex(3)}"
    testing.run("ip", "-n", pod_ns, "link", "add", "eth0", "type", "veth", "peer", "name", peer)
    testing.run("ip", "-n", pod_ns, "addr", "add", "192.0.2.10/24", "dev", "eth0")
    testing.run("ip", "-n", pod_ns, "link", "set", "eth0", "up")
    testing.run("ip", "-n", pod_ns, "link", "set", peer, "up")
    testing.run("ip", "-n", pod_ns, "route", "add", "default", "via", "192.0.2.1", "dev", "eth0")
    mac = link(pod_ns, "eth0").mac
    earlier = {"cniVersion": "1.1.0",
               "interfaces": [{"name": "eth0", "mac": mac, "sandbox": f"/var/run/netns/{pod_ns}"}],
               "ips": [{"address": "192.0.2.10/24", "gateway": "192.0.2.1", "interface": 0}],
               "routes": [{"dst": "0.0.0.0/0", "gw": "192.0.2.1"}]}
    pod = node.pod("after-eth0", [alloc(networks["a"], "net1", ["10.31.0.122/24"], gw4=True)])
    container = f"ctr{secrets.token_hex(4)}"
    result = verb(node, "ADD", pod_ns, pod, container, prevResult=earlier)
    assert result.exit == 0, result.out
    assert [itf["name"] for itf in result.out["interfaces"]] == ["eth0", "net1"]
    assert link(pod_ns, "eth0").mac == mac and "192.0.2.10/24" in link(pod_ns, "eth0").addresses
    assert link(node.host, link_name(PREFIX, container, "eth0")) is None  # no eth0 of its own
    v4 = routes(pod_ns)
    assert "default 10.31.0.1 net1" in v4 and not any(r.startswith("default") and r.endswith("eth0") for r in v4)
    assert verb(node, "CHECK", pod_ns, pod, container, prevResult=result.out).exit == 0
    assert verb(node, "DEL", pod_ns, pod, container, prevResult=result.out).exit == 0
    assert link(pod_ns, "net1") is None and link(pod_ns, "eth0") is not None  # the earlier plugin's to remove


def test_gc_removes_representors_no_record_owns(node: Node, networks: dict[str, str]) -> None:
    # A record lost (e.g. a wiped state dir) leaves its representor behind:
    # GC removes node-side veths named as the agent names them that no record
    # owns, and nothing else of the IPU namespace.
    from agent.store import StateStore

    ns1, ns2 = node.netns.new("pod"), node.netns.new("pod")
    pod1 = node.pod("orphan1", [alloc(networks["a"], "net1", ["10.31.0.131/24"])])
    pod2 = node.pod("orphan2", [alloc(networks["a"], "net1", ["10.31.0.132/24"])])
    kept, lost = f"ctr{secrets.token_hex(4)}", f"ctr{secrets.token_hex(4)}"
    assert add(node, ns1, pod1, kept).exit == 0
    assert add(node, ns2, pod2, lost).exit == 0
    StateStore(node.agent.state_dir).delete("multinet", lost, "eth0")
    lookalike = f"{PREFIX}keep{secrets.token_hex(2)}"  # a prefixed veth of another form: not ours
    testing.run("ip", "-n", node.ipu, "link", "add", lookalike, "type", "veth", "peer", "name", lookalike + "p")
    bridge = PREFIX + "0" * (15 - len(PREFIX))  # our form, but not a veth: not ours
    testing.run("ip", "-n", node.ipu, "link", "add", bridge, "type", "bridge")
    try:
        valid = [{"containerID": c, "ifname": "eth0"} for c in (kept, lost)]
        gc_conf = node.agent.conf(**{"cni.dev/valid-attachments": valid})
        result = testing.invoke(PLUGIN, {"CNI_COMMAND": "GC", "CNI_PATH": "/usr/lib/cni"}, gc_conf)
        assert result.exit == 0, result.out
        assert link(node.ipu, link_name(PREFIX, lost, "net1")) is None
        assert link(node.host, link_name(PREFIX, lost, "eth0")) is None
        assert link(node.ipu, link_name(PREFIX, kept, "net1")) is not None
        assert link(node.host, link_name(PREFIX, kept, "eth0")) is not None
        assert link(node.ipu, lookalike) is not None and link(node.ipu, bridge) is not None
    finally:
        testing.run("ip", "-n", node.ipu, "link", "del", lookalike, check=False)
        testing.run("ip", "-n", node.ipu, "link", "del", bridge, check=False)
    assert verb(node, "DEL", ns1, pod1, kept).exit == 0


def test_container_without_pod_identity_gets_the_default_network(node: Node) -> None:
    # Spec 2: CNI_ARGS is optional. A container outside Kubernetes (no
    # K8S_POD_* in CNI_ARGS) gets eth0 on the default network and nothing else.
    pod_ns = node.netns.new("pod")
    container = f"ctr{secrets.token_hex(4)}"
    env = testing.cni_env("ADD", container, pod_ns)
    result = testing.invoke(PLUGIN, env, node.agent.conf())
    assert result.exit == 0, result.out
    assert [itf["name"] for itf in result.out["interfaces"] if itf.get("sandbox")] == ["eth0"]
    eth0 = link(pod_ns, "eth0")
    assert eth0 is not None and any(a.startswith("10.244.77.") for a in eth0.addresses)
    check = dict(env, CNI_COMMAND="CHECK")
    assert testing.invoke(PLUGIN, check, node.agent.conf(prevResult=result.out)).exit == 0
    assert testing.invoke(PLUGIN, dict(env, CNI_COMMAND="DEL"), node.agent.conf()).exit == 0
    assert link(pod_ns, "eth0") is None
    # Half an identity is still an error naming what is missing.
    half = dict(env, CNI_ARGS="K8S_POD_NAMESPACE=default")
    failed = testing.invoke(PLUGIN, half, node.agent.conf())
    assert failed.exit != 0 and failed.out["code"] == 4 and "K8S_POD_NAME" in failed.out["msg"]


def test_second_attachment_of_a_container_with_another_ifname(node: Node, networks: dict[str, str]) -> None:
    # Spec 2: a container may be added to a network again under another
    # CNI_IFNAME. The pod's secondary interfaces are made once, by the first.
    pod_ns = node.netns.new("pod")
    pod = node.pod("two-ifnames", [alloc(networks["a"], "net1", ["10.31.0.141/24"])])
    container = f"ctr{secrets.token_hex(4)}"
    assert add(node, pod_ns, pod, container).exit == 0
    env = testing.cni_env("ADD", container, pod_ns, ifname="eth1", pod=pod)
    second = testing.invoke(PLUGIN, env, node.agent.conf())
    assert second.exit == 0, second.out
    assert [itf["name"] for itf in second.out["interfaces"] if itf.get("sandbox")] == ["eth1"]
    assert link(pod_ns, "eth1") is not None and link(pod_ns, "net1") is not None
    assert testing.invoke(PLUGIN, dict(env, CNI_COMMAND="DEL"), node.agent.conf()).exit == 0
    assert link(pod_ns, "eth1") is None and link(pod_ns, "net1") is not None
    assert verb(node, "DEL", pod_ns, pod, container).exit == 0
    assert link(pod_ns, "eth0") is None and link(pod_ns, "net1") is None
