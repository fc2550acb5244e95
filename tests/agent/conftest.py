"""Fixtures of the agent's tests: the real apiserver, real namespaces, a real agent process."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import json

import pytest
from kubernetes import client, config

from tests.datapath.conftest import free_port
from tests.support import cni as testing
from cni.install import install

PREFIX = testing.TEST_PREFIX


@pytest.fixture(scope="session")
def root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces")


@pytest.fixture(scope="session")
def api(root: None, kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture(scope="session")
def crds(api: client.ApiClient) -> list[str]:
    # The API package's CRDs, when the cluster does not have them yet.
    return testing.ensure_crds(api)


@contextmanager
def emulated_node(api: client.ApiClient, kubeconfig: Path, work: Path, *default: str) -> Iterator[testing.Node]:
    """A node's host and IPU namespaces, a macvlan uplink, a Node object and its agent."""
    objects = testing.ClusterObjects(api, PREFIX)
    netns = testing.Namespaces(PREFIX)
    agent = None
    try:
        namespace = objects.namespace()
        node_name = objects.node()
        host, ipu = netns.new("host"), netns.new("ipu")
        # The macvlan uplink: a veth end in the host namespace (no dummy links here).
        uplink = f"{PREFIX}up{secrets.token_hex(2)}"
        testing.run("ip", "-n", host, "link", "add", uplink, "type", "veth", "peer", "name", uplink + "p")
        testing.run("ip", "-n", host, "link", "set", uplink, "up")
        args = ["--ipu-netns", ipu, "--host-netns", host, "--link-prefix", PREFIX, *default]
        agent = testing.AgentProcess(work, node_name, kubeconfig, args)
        agent.start()
        # The plugin as `multinet install-cni` puts it in a runtime's bin dir.
        plugin = str(install(work / "bin"))
        yield testing.Node(node_name, namespace, host, ipu, uplink, agent, objects, netns, kubeconfig, plugin)
    finally:
        if agent is not None:
            agent.stop()
        objects.close()
        netns.close()


@contextmanager
def node_with_target(api: client.ApiClient, kubeconfig: Path, work: Path, pod_cidr: str,
                     *target_args: str) -> Iterator[tuple[testing.Node, str]]:
    """An emulated node whose agent programs a real `multinet ipu` (its own
    process, in the node's IPU namespace), and the target's address."""
    address = f"127.0.0.1:{free_port()}"
    with emulated_node(api, kubeconfig, work, "--pod-cidr", pod_cidr, "--p4runtime", address) as node:
        log = open(work / "ipu.log", "ab")
        target = subprocess.Popen([sys.executable, "-m", "multinet.cli", "ipu", "--netns", node.ipu, "--port",
                                   address.rsplit(":", 1)[1], "--prefix", PREFIX, *target_args],
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            yield node, address
        finally:
            target.terminate()
            target.wait(timeout=30)
            log.close()


@pytest.fixture(scope="module")
def node(api: client.ApiClient, crds: list[str], kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[testing.Node]:
    with emulated_node(api, kubeconfig, tmp_path_factory.mktemp("agent"), "--pod-cidr", "10.244.77.0/24") as n:
        yield n


@pytest.fixture(scope="module")
def networks(node: testing.Node) -> dict[str, str]:
    """Three networks: veth L2 dual-stack with services, veth L3, macvlan."""
    tag = secrets.token_hex(2)
    return {
        "a": node.objects.network(f"{PREFIX}-a-{tag}", {
            "topology": "L2", "mtu": 1400, "interfaceKind": "veth",
            "ipv4": {"subnet": "10.31.0.0/24", "gateway": "10.31.0.1"},
            "ipv6": {"subnet": "fd31::/64", "gateway": "fd31::1"},
            "serviceCIDRs": ["10.96.31.0/24"],
        }),
        "b": node.objects.network(f"{PREFIX}-b-{tag}", {
            "topology": "L3", "mtu": 1450, "ipv4": {"subnet": "10.32.0.0/16", "gateway": "10.32.0.1"},
        }),
        "c": node.objects.network(f"{PREFIX}-c-{tag}", {
            "topology": "L2", "mtu": 1300, "interfaceKind": "macvlan", "uplink": node.uplink,
            "ipv4": {"subnet": "10.33.0.0/24"},
        }),
    }


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """A CNI config dir whose primary network is the reference bridge + host-local."""
    conf_dir = tmp_path_factory.mktemp("net.d")
    ipam_dir = tmp_path_factory.mktemp("ipam")
    bridge = f"{PREFIX}br{secrets.token_hex(3)}"
    conflist = {
        "cniVersion": "1.0.0",
        "name": f"{PREFIX}primary",
        "plugins": [{
            "type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.245.7.0/24"}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(ipam_dir)},
        }],
    }
    (conf_dir / "10-primary.conflist").write_text(json.dumps(conflist))
    # multinet's own config sorts later and is never taken as the primary.
    (conf_dir / "99-multinet.conflist").write_text(json.dumps(
        {"cniVersion": "1.1.0", "name": "multinet", "plugins": [{"type": "multinet-cni"}]}))
    return {"conf_dir": conf_dir, "ipam_dir": ipam_dir / f"{PREFIX}primary", "bridge": bridge}


@pytest.fixture(scope="module")
def delegating_node(api: client.ApiClient, crds: list[str], kubeconfig: Path, primary: dict[str, Path | str],
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[testing.Node]:
    args = ("--cni-conf-dir", str(primary["conf_dir"]), "--cni-bin-dir", "/usr/lib/cni")
    with emulated_node(api, kubeconfig, tmp_path_factory.mktemp("agent"), *args) as n:
        yield n


FAKE_PLUGIN = """#!{python} -S
# A CNI 1.1.0 primary plugin that records each call (the reference plugins
# here stop at 1.0.0, so they have neither STATUS nor GC).
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
command = os.environ.get("CNI_COMMAND", "")
doc = json.load(sys.stdin) if command != "VERSION" else {{}}
with open(os.path.join(here, "calls.jsonl"), "a") as f:
    env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
    f.write(json.dumps({{"env": env, "stdin": doc}}) + "\\n")
fail = os.path.join(here, "fail-" + command)
if os.path.exists(fail):
    sys.stdout.write(open(fail).read())
    sys.exit(1)
"""


@pytest.fixture(scope="module")
def status_node(api: client.ApiClient, crds: list[str], kubeconfig: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[testing.Node, Path]]:
    """A node delegating eth0 to a 1.1.0 conflist of a recording fake plugin."""
    bin_dir, conf_dir = tmp_path_factory.mktemp("fakebin"), tmp_path_factory.mktemp("fakenet.d")
    plugin = bin_dir / f"{PREFIX}-fake"
    plugin.write_text(FAKE_PLUGIN.format(python=sys.executable))
    plugin.chmod(0o755)
    (conf_dir / "10-primary.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"], "name": f"{PREFIX}fakeprimary",
        "plugins": [{"type": plugin.name, "marker": 1}, {"type": plugin.name, "marker": 2}]}))
    args = ("--cni-conf-dir", str(conf_dir), "--cni-bin-dir", str(bin_dir))
    with emulated_node(api, kubeconfig, tmp_path_factory.mktemp("agent"), *args) as n:
        yield n, bin_dir


@pytest.fixture
def recording_plugin(tmp_path: Path) -> Path:
    """The recording fake plugin in a bin dir of its own; returns its path."""
    plugin = tmp_path / "bin" / f"{PREFIX}-rec"
    plugin.parent.mkdir()
    plugin.write_text(FAKE_PLUGIN.format(python=sys.executable))
    plugin.chmod(0o755)
    return plugin
