"""eth0 delegated to the primary conflist (as Multus does), here the reference
bridge + host-local plugins, invoked by the agent exactly as a runtime would."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from cni.spec import CniError
from tests.support.cni import TEST_PREFIX as PREFIX
from tests.support.cni import Node, alloc, link

pytestmark = [pytest.mark.cluster, pytest.mark.netns]


@pytest.fixture(scope="module")
def network(delegating_node: Node) -> str:
    return delegating_node.objects.network(f"{PREFIX}-d-{secrets.token_hex(2)}", {
        "topology": "L2", "ipv4": {"subnet": "10.34.0.0/24", "gateway": "10.34.0.1"}, "mtu": 1400,
    })


def reserved(ipam_dir: Path) -> set[str]:
    return {p.name for p in ipam_dir.glob("10.245.7.*")} if ipam_dir.exists() else set()


@pytest.mark.parametrize("version", ["0.4.0", "1.1.0"])
def test_delegated_eth0(delegating_node: Node, network: str, primary: dict[str, Any], version: str) -> None:
    node = delegating_node
    pod_ns = node.netns.new("pod")
    pod = node.pod(f"deleg{version.replace('.', '')}", [alloc(network, "net1", ["10.34.0.5/24"], gw4=False)])
    container = f"ctr{secrets.token_hex(4)}"
    result = node.cni("ADD", pod_ns, pod, container, version)
    assert result.exit == 0, result.out

    # eth0 comes from the bridge plugin with a host-local address; net1 is ours.
    eth0 = link(pod_ns, "eth0")
    assert eth0 is not None and eth0.kind == "veth"
    assert any(a.startswith("10.245.7.") for a in eth0.addresses)
    assert "10.34.0.5/24" in link(pod_ns, "net1").addresses
    assert len(reserved(primary["ipam_dir"])) == 1
    bridge = link(node.host, str(primary["bridge"]))
    assert bridge is not None and bridge.kind == "bridge"
    names = [i["name"] for i in result.out["interfaces"]]
    assert "eth0" in names and "net1" in names and str(primary["bridge"]) in names
    assert any(ip["address"].startswith("10.245.7.") for ip in result.out["ips"])

    check = node.cni("CHECK", pod_ns, pod, container, version, prevResult=result.out)
    assert check.exit == 0, check.out

    assert node.cni("DEL", pod_ns, pod, container, version, prevResult=result.out).exit == 0
    assert link(pod_ns, "eth0") is None and link(pod_ns, "net1") is None
    assert reserved(primary["ipam_dir"]) == set()  # host-local released the address
    assert node.cni("DEL", pod_ns, pod, container, version).exit == 0


def test_status_reports_missing_primary(delegating_node: Node, primary: dict[str, Any]) -> None:
    from tests.support import cni as testing

    status = {"CNI_COMMAND": "STATUS", "CNI_PATH": "/usr/lib/cni"}
    assert testing.invoke(testing.plugin_binary(), status, delegating_node.agent.conf()).exit == 0
    conf = Path(primary["conf_dir"]) / "10-primary.conflist"
    hidden = conf.with_suffix(".off")
    conf.rename(hidden)
    try:
        result = testing.invoke(testing.plugin_binary(), status, delegating_node.agent.conf())
        assert result.exit != 0 and result.out["code"] == 50 and "primary" in result.out["msg"]
        pod_ns = delegating_node.netns.new("pod")
        pod = delegating_node.pod("noprimary", None)
        added = delegating_node.cni("ADD", pod_ns, pod, f"ctr{secrets.token_hex(4)}")
        assert added.exit != 0 and added.out["code"] == 11
    finally:
        hidden.rename(conf)


def calls(bin_dir: Path, command: str) -> list[dict[str, Any]]:
    import json

    lines = (bin_dir / "calls.jsonl").read_text().splitlines() if (bin_dir / "calls.jsonl").exists() else []
    return [c for c in map(json.loads, lines) if c["env"].get("CNI_COMMAND") == command]


def test_status_and_gc_reach_the_delegated_primary(status_node: tuple[Node, Path]) -> None:
    # Spec 2: STATUS asks the plugins ADD is delegated to; GC is forwarded to them.
    import json

    from tests.support.cni import invoke, plugin_binary

    node, bin_dir = status_node
    env = {"CNI_COMMAND": "STATUS", "CNI_PATH": "/usr/lib/cni"}
    assert invoke(plugin_binary(), env, node.agent.conf()).exit == 0
    seen = calls(bin_dir, "STATUS")
    assert seen and seen[-1]["stdin"]["cniVersion"] == "1.1.0" and seen[-1]["stdin"]["name"] == f"{PREFIX}fakeprimary"
    (bin_dir / "fail-STATUS").write_text(json.dumps({"cniVersion": "1.1.0", "code": 51, "msg": "uplink down"}))
    try:
        failed = invoke(plugin_binary(), env, node.agent.conf())
        assert failed.exit != 0 and failed.out["code"] == 51 and "uplink down" in failed.out["msg"]
    finally:
        (bin_dir / "fail-STATUS").unlink()

    valid = [{"containerID": "c0ffee", "ifname": "eth0"}]
    gc = node.agent.conf(**{"cni.dev/valid-attachments": valid})
    result = invoke(plugin_binary(), {"CNI_COMMAND": "GC", "CNI_PATH": "/usr/lib/cni"}, gc)
    assert result.exit == 0, result.out
    forwarded = calls(bin_dir, "GC")
    assert [c["stdin"]["marker"] for c in forwarded] == [1, 2]  # every plugin of the list
    assert all(c["stdin"]["cni.dev/valid-attachments"] == valid and "CNI_CONTAINERID" not in c["env"]
               for c in forwarded)
    (bin_dir / "fail-GC").write_text(json.dumps({"cniVersion": "1.1.0", "code": 11, "msg": "store busy"}))
    try:
        failed = invoke(plugin_binary(), {"CNI_COMMAND": "GC", "CNI_PATH": "/usr/lib/cni"}, gc)
        assert failed.exit != 0 and "store busy" in (failed.out.get("details", "") + failed.out["msg"])
    finally:
        (bin_dir / "fail-GC").unlink()


def test_primary_list_flags_and_version(tmp_path: Path) -> None:
    # Spec 1: the list's version is the highest of cniVersion/cniVersions the
    # runtime side speaks; disableCheck/disableGC keep those verbs from it.
    import json

    from agent import delegate

    (tmp_path / "10-p.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0", "9.0.0"], "name": "p",
        "disableCheck": True, "disableGC": "true", "plugins": [{"type": f"{PREFIX}-absent"}]}))
    conf = delegate.find_primary(tmp_path)
    assert (conf.version, conf.disable_check, conf.disable_gc) == ("1.1.0", True, True)
    inv = delegate.Invocation("c0ffee", "/var/run/netns/none", "eth0", "", ("/nonexistent",), None)
    # The plugin binary does not exist: reaching it would raise.
    assert delegate.run_chain("CHECK", conf, inv, {"interfaces": []}) is None
    assert delegate.run_network_verb("GC", conf, ("/nonexistent",), None, {}) == []
    with pytest.raises(CniError):
        delegate.run_network_verb("STATUS", conf, ("/nonexistent",), None, {})


def test_delegates_get_the_runtime_config_they_declare(recording_plugin: Path) -> None:
    # Spec 3, "Deriving execution configuration": `capabilities` is removed and
    # `runtimeConfig` holds the capability arguments the plugin declares.
    from agent import delegate

    conf = delegate.ConfList("p", "primary", "1.1.0", (
        {"type": recording_plugin.name, "capabilities": {"portMappings": True}},
        {"type": recording_plugin.name},
    ))
    given = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
             "bandwidth": {"ingressRate": 1000}}
    inv = delegate.Invocation("c0ffee", "", "eth0", "", (str(recording_plugin.parent),), None, runtime_config=given)
    assert delegate.run_chain("DEL", conf, inv, {"interfaces": []}) is None
    first, second = reversed(calls(recording_plugin.parent, "DEL"))  # DEL runs the list in reverse
    assert first["stdin"]["runtimeConfig"] == {"portMappings": given["portMappings"]}
    assert "capabilities" not in first["stdin"] and "runtimeConfig" not in second["stdin"]
    assert "CNI_NETNS" not in first["env"]  # DEL without a netns leaves it unset, not empty
