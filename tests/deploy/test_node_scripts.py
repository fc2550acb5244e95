"""The node DaemonSet's scripts: the agent's P4Runtime endpoint and the plugin bundle.

The bundle is installed here with this machine's Python and run as a runtime
runs a plugin (a process with an empty environment); tests/deploy/test_image.py
does the same with the image's Python inside the image.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.deploy.conftest import repo_path
from tests.deploy.test_manifests import node_script

agent = node_script("agent.py")
SOFTWARE = "127.0.0.1:9559"


def test_a_node_without_settings_uses_the_software_target() -> None:
    assert agent.endpoint("n1", {}, {}, SOFTWARE) == SOFTWARE


def test_an_external_ipu_node_uses_its_annotation() -> None:
    labels = {agent.IPU_LABEL: agent.EXTERNAL}
    assert agent.endpoint("n1", labels, {agent.ENDPOINT_ANNOTATION: "10.0.0.7:9559"}, SOFTWARE) == "10.0.0.7:9559"
    assert agent.endpoint("n1", labels, {agent.ENDPOINT_ANNOTATION: "[fd00::7]:9559"}, SOFTWARE) == "[fd00::7]:9559"


@pytest.mark.parametrize(("labels", "annotations", "names"), [
    ({agent.IPU_LABEL: agent.EXTERNAL}, {}, agent.ENDPOINT_ANNOTATION),  # which device?
    ({}, {agent.ENDPOINT_ANNOTATION: "10.0.0.7:9559"}, agent.IPU_LABEL),  # two targets on one node
    ({agent.IPU_LABEL: agent.EXTERNAL}, {agent.ENDPOINT_ANNOTATION: "10.0.0.7"}, "HOST:PORT"),
    ({agent.IPU_LABEL: agent.EXTERNAL}, {agent.ENDPOINT_ANNOTATION: "10.0.0.7:70000"}, "1 to 65535"),
    ({agent.IPU_LABEL: agent.EXTERNAL}, {agent.ENDPOINT_ANNOTATION: "fd00::7:9559"}, "brackets"),
    ({agent.IPU_LABEL: agent.EXTERNAL}, {agent.ENDPOINT_ANNOTATION: "[nope]:9559"}, "IPv6"),
])
def test_unusable_node_settings_are_refused_by_name(labels: dict[str, str], annotations: dict[str, str],
                                                    names: str) -> None:
    with pytest.raises(agent.NodeSettingError, match="node n1") as err:
        agent.endpoint("n1", labels, annotations, SOFTWARE)
    assert names in str(err.value)


# --- the plugin bundle, installed and run as the runtime runs it ---------------------------

INSTALL = repo_path("deploy", "base", "node", "install-cni.py")


def install(bin_dir: Path, conf_dir: Path, socket: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(INSTALL), "--bin-dir", str(bin_dir), "--conf-dir", str(conf_dir),
                           "--socket", str(socket)], capture_output=True, text=True, timeout=120)


def plugin(bin_dir: Path, command: str, stdin: Mapping[str, object], **env: str) -> tuple[int, dict[str, object]]:
    """Run the installed plugin with only the CNI variables, as a runtime does."""
    proc = subprocess.run([str(bin_dir / "multinet-cni")], input=json.dumps(stdin).encode(),
                          env={"CNI_COMMAND": command, **env}, capture_output=True, timeout=30)
    assert not proc.stderr, proc.stderr.decode()  # e.g. the interpreter missing a landmark
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("node")
    bin_dir, conf_dir, socket = root / "bin", root / "net.d", root / "agent.sock"
    done = install(bin_dir, conf_dir, socket)
    assert done.returncode == 0, done.stderr
    return bin_dir, conf_dir, socket


def test_plugin_runs_from_the_bin_dir_without_the_environment(installed: tuple[Path, Path, Path]) -> None:
    bin_dir, _, socket = installed
    code, out = plugin(bin_dir, "VERSION", {"cniVersion": "1.0.0"})
    assert code == 0 and "1.0.0" in out["supportedVersions"]  # type: ignore[operator]
    # No agent listens: STATUS says so, through the socket the conflist names.
    code, out = plugin(bin_dir, "STATUS", {"cniVersion": "1.1.0", "name": "multinet", "type": "multinet-cni",
                                           "socket": str(socket)})
    assert (code, out["code"]) == (1, 50) and str(socket) in str(out["msg"])


def test_plugin_takes_a_del_with_prev_result_as_containerd_sends_it(installed: tuple[Path, Path, Path]) -> None:
    """containerd passes the cached ADD result on DEL and CHECK: the shim then checks
    its addresses with a module it imports only on that path, which the bundle must hold."""
    bin_dir, _, socket = installed
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "mac": "0a:58:0a:f4:00:05", "sandbox": "/x"}],
            "ips": [{"address": "10.244.0.5/24", "gateway": "10.244.0.1", "interface": 0}], "dns": {}}
    conf = {"cniVersion": "1.0.0", "name": "multinet", "type": "multinet-cni", "socket": str(socket),
            "prevResult": prev}
    env = {"CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/x", "CNI_IFNAME": "eth0", "CNI_PATH": str(bin_dir)}
    proc = subprocess.run([str(bin_dir / "multinet-cni")], input=json.dumps(conf).encode(),
                          env={"CNI_COMMAND": "DEL", **env}, capture_output=True, timeout=30)
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    assert proc.returncode == 0  # no agent: DEL is done (spec: DEL must not fail on what is gone)
    code, out = plugin(bin_dir, "CHECK", conf, **env)
    assert (code, out["code"]) == (1, 11)  # no agent: try again later, not a crash


def test_plugin_owns_nothing_outside_its_bundle(installed: tuple[Path, Path, Path]) -> None:
    """The bundle holds its own interpreter, libraries and modules: no path of the
    installing Python's prefix or of this checkout appears in the launcher or the bundle's entry."""
    bin_dir, _, _ = installed
    launcher = (bin_dir / "multinet-cni").read_text()
    bundles = list((bin_dir / ".multinet-cni").iterdir())
    assert len(bundles) == 1
    for text in (launcher, (bundles[0] / "plugin.py").read_text()):
        assert sys.prefix not in text and sys.base_prefix not in text
        assert str(repo_path()) not in text  # the repository
    assert (bundles[0] / "site" / "cni" / "shim.py").is_file()
    assert not (bundles[0] / "site" / "controller").exists()  # only what the shim imports


def test_conflist_sorts_first_and_speaks_what_containerd_reads(installed: tuple[Path, Path, Path]) -> None:
    _, conf_dir, socket = installed
    (conf_dir / "10-primary.conflist").write_text("{}")
    first = sorted(p.name for p in conf_dir.iterdir() if not p.name.startswith("."))[0]
    doc = json.loads((conf_dir / first).read_text())
    assert first == "00-multinet.conflist"
    assert doc["cniVersion"] == "1.0.0" and "1.1.0" in doc["cniVersions"]
    assert doc["plugins"] == [{"type": "multinet-cni", "socket": str(socket)}]


def test_reinstall_reuses_the_bundle_and_prunes_old_ones(installed: tuple[Path, Path, Path]) -> None:
    bin_dir, conf_dir, socket = installed
    bundles = bin_dir / ".multinet-cni"
    (current,) = bundles.iterdir()
    stale = bundles / "0000000000000000"
    (stale / "bin").mkdir(parents=True)
    done = install(bin_dir, conf_dir, socket)
    assert done.returncode == 0, done.stderr
    assert list(bundles.iterdir()) == [current]  # same content, same bundle; the stale one went
    assert current.name in (bin_dir / "multinet-cni").read_text()


def test_relative_paths_are_refused_by_flag(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(INSTALL), "--bin-dir", "bin", "--conf-dir", str(tmp_path),
                           "--socket", str(tmp_path / "s")], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode != 0 and "--bin-dir must be an absolute path" in done.stderr
    assert not (tmp_path / "bin").exists()


def test_install_needs_no_environment(tmp_path: Path) -> None:
    """The init container has almost none: PATH only."""
    done = subprocess.run([sys.executable, str(INSTALL), "--bin-dir", str(tmp_path / "b"), "--conf-dir",
                           str(tmp_path / "c"), "--socket", "/run/multinet/cni.sock"], capture_output=True,
                          text=True, env={"PATH": os.environ["PATH"]}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "00-multinet.conflist" in done.stdout
