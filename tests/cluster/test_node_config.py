"""The pure parts of the real nodes: address plans, the files containerd and
kubelet read, the conflists, the sysctl record. No root, no processes."""

from __future__ import annotations

import ipaddress
import json
import tomllib
from pathlib import Path

import pytest
import yaml

from cni.install import CONFLIST_NAME, install_conflist
from multinet.cluster import netplan, node_cni, sysctls
from multinet.cluster.containerd import Containerd
from multinet.cluster.kubelet import Kubelet


def nets(*cidrs: str) -> list[ipaddress.IPv4Network]:
    return [ipaddress.IPv4Network(c) for c in cidrs]


def test_a_cluster_takes_the_first_slot_nothing_routes() -> None:
    assert netplan.choose(nets("192.0.2.0/24", "127.0.0.0/8")).slot == 0
    # another cluster's underlay, or one of its pod ranges, takes a slot
    assert netplan.choose(nets("10.254.0.0/24")).slot == 1
    assert netplan.choose(nets("10.244.0.0/24", "10.254.1.0/24")).slot == 2
    with pytest.raises(netplan.NetPlanError, match="every one of the 16 address slots"):
        netplan.choose(nets("10.0.0.0/8"))


def test_slot_ranges_never_overlap_another_slots() -> None:
    plans = [netplan.NetPlan(s) for s in range(netplan.SLOTS)]
    for a in plans:
        for b in plans:
            if a != b:
                assert not any(x.overlaps(y) for x in a.ranges() for y in b.ranges())
    p = plans[3]
    for i in range(1, netplan.MAX_NODES + 1):
        assert ipaddress.ip_address(p.node_ip(i)) in p.underlay
        assert ipaddress.IPv4Network(p.pod_cidr(i)).subnet_of(p.cluster_cidr)
    assert ipaddress.ip_address(p.gateway) in p.underlay and p.gateway not in {p.node_ip(i) for i in range(1, 16)}
    with pytest.raises(netplan.NetPlanError, match="at most 15"):
        p.node_ip(16)


def test_a_recorded_plan_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "network.json"
    path.write_text(json.dumps({"slot": 7}))
    assert netplan.load_or_choose(path) == netplan.NetPlan(7)
    path.write_text(json.dumps({"slot": 99}))  # out of range: not a plan
    assert netplan.load(path) is None


def test_containerd_config_keeps_everything_per_node(tmp_path: Path) -> None:
    c = Containerd(tmp_path / "containerd", tmp_path / "bin", tmp_path / "net.d")
    config = tomllib.loads(c.write_config().read_text())
    assert config["version"] == 2
    for key in ("root", "state"):
        assert Path(config[key]).is_relative_to(tmp_path)
    assert Path(config["grpc"]["address"]) == c.socket
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE here
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10.1"
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is False
    assert Path(runc["options"]["Root"]).is_relative_to(tmp_path)
    assert (cri["cni"]["bin_dir"], cri["cni"]["conf_dir"]) == (str(tmp_path / "bin"), str(tmp_path / "net.d"))


def test_kubelet_configuration(tmp_path: Path) -> None:
    k = Kubelet("node1", "10.254.0.1", tmp_path / "kubelet", "mnabc-node1", tmp_path / "containerd.sock")
    config = yaml.safe_load(k.write_config(tmp_path / "ca.crt").read_text())
    assert config["kind"] == "KubeletConfiguration"
    assert config["containerRuntimeEndpoint"] == f"unix://{tmp_path / 'containerd.sock'}"
    assert (config["cgroupDriver"], config["cgroupRoot"]) == ("cgroupfs", "/mnabc-node1")
    assert config["failCgroupV1"] is False and config["failSwapOn"] is False
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authorization"]["mode"] == "Webhook"
    assert config["readOnlyPort"] == 0
    assert config["imageGCHighThresholdPercent"] == 100  # local images cannot be pulled again
    argv = k.argv(Path("/bin/kubelet"), "mnabc-node1-host")
    assert argv[:2] == ["nsenter", "--net=/run/netns/mnabc-node1-host"]
    assert "--node-ip=10.254.0.1" in argv and "--hostname-override=node1" in argv


def test_conflists(tmp_path: Path) -> None:
    install_conflist(tmp_path, Path("/run/agent.sock"))
    node_cni.install_conf_dir(tmp_path, "10.244.1.0/24", tmp_path / "ipam")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [CONFLIST_NAME, node_cni.PRIMARY_CONFLIST]  # multinet's first: the runtime calls it
    multinet = json.loads((tmp_path / CONFLIST_NAME).read_text())
    # containerd 1.6 refuses 1.1.0 results; a newer runtime may pick 1.1.0
    assert multinet["cniVersion"] == "1.0.0" and multinet["cniVersions"] == ["1.0.0", "1.1.0"]
    assert multinet["plugins"] == [{"type": "multinet-cni", "socket": "/run/agent.sock"}]
    primary = json.loads((tmp_path / node_cni.PRIMARY_CONFLIST).read_text())
    bridge = primary["plugins"][0]
    assert (bridge["type"], bridge["ipam"]["type"]) == ("bridge", "host-local")
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.1.0/24"}]]
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "ipam")


def test_the_last_cluster_restores_the_sysctls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = tmp_path / "proc"
    for name, value in (("vm/overcommit_memory", "0"), ("kernel/panic", "1"), ("kernel/panic_on_oops", "0")):
        (proc / name).parent.mkdir(parents=True, exist_ok=True)
        (proc / name).write_text(value + "\n")
    monkeypatch.setattr(sysctls, "PROC_SYS", proc)
    record = tmp_path / "run" / "kubelet-sysctls.json"
    one, two, crashed = (tmp_path / n for n in ("one", "two", "crashed"))
    for owner in (one, two, crashed):
        owner.touch()
    sysctls.acquire(one, record)
    (proc / "vm/overcommit_memory").write_text("1\n")  # one's kubelet starts
    (proc / "kernel/panic").write_text("10\n")
    assert sysctls.acquire(two, record)["vm/overcommit_memory"] == "0"  # the first record stands
    sysctls.acquire(crashed, record)
    crashed.unlink()  # a cluster gone without down no longer counts
    assert sysctls.release(one, record) == {}  # two's kubelets still run
    assert sysctls.read()["kernel/panic"] == "10"
    assert sysctls.release(two, record) == {"vm/overcommit_memory": ("1", "0"), "kernel/panic": ("10", "1")}
    assert sysctls.read() == {"vm/overcommit_memory": "0", "kernel/panic": "1", "kernel/panic_on_oops": "0"}
    assert not record.parent.exists() and sysctls.release(two, record) == {}
