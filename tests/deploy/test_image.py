"""The multinet image as a container runs it: its entry points, the node scripts and the
probes of deploy/, run inside the unpacked image (its own root, this machine's kernel).

No container engine runs here, so `in_image` stands where runc would: a private
mount namespace and chroot into the image's layers (the network namespace is
the host's, as for the DaemonSets' hostNetwork pods).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multinet.cluster import addon
from tests.deploy.conftest import IMAGE_SCRIPT, api_client, core_api, build_image, container, in_image, pod_spec, repo_path

pytestmark = pytest.mark.image

SCRIPTS = repo_path("deploy", "base", "node")


def test_image_is_rebuilt_only_when_its_inputs_change(image_archive: Path) -> None:
    assert subprocess.run([str(IMAGE_SCRIPT), "--print"], capture_output=True, text=True,
                          check=True).stdout.strip() == str(image_archive)
    before = image_archive.stat().st_mtime_ns
    again = build_image()
    assert again.returncode == 0 and "cached" in again.stderr
    assert image_archive.stat().st_mtime_ns == before
    ref = subprocess.run([str(IMAGE_SCRIPT), "--ref"], capture_output=True, text=True, check=True).stdout.strip()
    assert addon.image_ref(image_archive) == ref == "localhost/multinet:0.1.0"


def test_the_entry_points_run(image_root: Path) -> None:
    helped = in_image(image_root, ["multinet", "--help"])
    assert helped.returncode == 0, helped.stderr
    for command in (b"controller", b"agent", b"install-cni", b"ipu"):
        assert command in helped.stdout
    version = in_image(image_root, ["multinet-cni"], env={"CNI_COMMAND": "VERSION"}, stdin=b'{"cniVersion":"1.0.0"}')
    assert version.returncode == 0, version.stderr
    assert "1.1.0" in json.loads(version.stdout)["supportedVersions"]
    tools = in_image(image_root, ["sh", "-c", "nft --version && ip -V && conntrack --version && nsenter --version"])
    assert tools.returncode == 0, tools.stderr


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"mndeploy-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_the_ipu_target_probes_the_kernel_from_the_image(image_root: Path, netns: str) -> None:
    """nft, netlink and the pipeline's feature probes, from the image's own tools."""
    out = in_image(image_root, ["multinet", "ipu", "--netns", netns, "--prefix", "mnd-", "--features"],
                   binds=(Path("/run/netns"),))
    assert out.returncode == 0, out.stderr
    features = json.loads(out.stdout)
    assert features["detected"] and features["used"]
    assert subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "tables"], capture_output=True,
                          text=True, check=True).stdout.strip() == ""  # the probe left nothing behind


def _node_script(root: Path, name: str, args: list[str], binds: tuple[Path, ...] = (), **kw: Any) -> Any:
    """A script of deploy/base/node run as the DaemonSet runs it: the image's Python, the
    script where its ConfigMap volume would be (here: its own path, bound in)."""
    return in_image(root, ["/opt/multinet/bin/python3", str(SCRIPTS / name), *args], binds=(SCRIPTS, *binds), **kw)


def test_install_cni_from_the_image_gives_the_host_a_working_plugin(image_root: Path, tmp_path: Path) -> None:
    """The init container's job: what it writes from inside the image runs on the node,
    where neither the image's Python nor its libraries exist."""
    node = tmp_path / "node"
    bin_dir, conf_dir = node / "bin", node / "net.d"
    bin_dir.mkdir(parents=True)
    done = _node_script(image_root, "install-cni.py", [f"--bin-dir={bin_dir}", f"--conf-dir={conf_dir}",
                                                       "--socket=/run/multinet/cni.sock"], binds=(node,), timeout=180)
    assert done.returncode == 0, done.stderr.decode()
    (bundle,) = (bin_dir / ".multinet-cni").iterdir()
    assert (bundle / "bin" / "python3").read_bytes() == (image_root / "usr" / "bin" / "python3.11").read_bytes()
    proc = subprocess.run([str(bin_dir / "multinet-cni")], input=b'{"cniVersion": "1.0.0"}',
                          env={"CNI_COMMAND": "VERSION"}, capture_output=True, timeout=30)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    assert json.loads(proc.stdout)["cniVersion"] == "1.0.0"
    assert json.loads((conf_dir / "00-multinet.conflist").read_text())["plugins"][0]["type"] == "multinet-cni"


# --- against the local apiserver ----------------------------------------------------------

@pytest.fixture
def node(kubeconfig: Path) -> Iterator[str]:
    core = core_api(api_client(str(kubeconfig)))
    name = f"deploy-image-{uuid.uuid4().hex[:6]}"
    core.create_node({"metadata": {"name": name}})
    try:
        yield name
    finally:
        core.delete_node(name)


@pytest.mark.cluster
def test_agent_wrapper_in_the_image_reads_its_node(image_root: Path, kubeconfig: Path, node: str) -> None:
    def agent_command() -> Any:
        return _node_script(image_root, "agent.py", ["--node", node, "--kubeconfig", str(kubeconfig), "--print",
                                                     "--", "--socket=/run/multinet/cni.sock"],
                            binds=(kubeconfig.parent,))

    plain = agent_command()
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.decode().split()[-2:] == ["--p4runtime", "127.0.0.1:9559"]
    core = core_api(api_client(str(kubeconfig)))
    core.patch_node(node, {"metadata": {"labels": {"multinet.io/ipu": "external"}}})
    refused = agent_command()
    assert refused.returncode == 2 and b"multinet.io/p4runtime-endpoint" in refused.stderr
    core.patch_node(node, {"metadata": {"annotations": {"multinet.io/p4runtime-endpoint": "192.0.2.7:9559"}}})
    external = agent_command()
    assert external.returncode == 0, external.stderr
    assert external.stdout.decode().split()[-2:] == ["--p4runtime", "192.0.2.7:9559"]


@pytest.mark.cluster
def test_the_agent_probes_of_the_daemonset_work_in_the_image(image_root: Path, kubeconfig: Path, kubectl: str,
                                                             tmp_path: Path) -> None:
    """The probe commands exactly as deploy/ writes them, against a real agent's socket:
    both pass while it serves, both fail once it is gone."""
    rendered = addon.render(addon.DEPLOY / "base", "localhost/multinet:0.1.0", kubectl)
    agent = container(pod_spec(rendered, "DaemonSet", "multinet-node"), "agent")
    probes = {kind: agent[kind]["exec"]["command"] for kind in ("readinessProbe", "livenessProbe")}
    sock = tmp_path / "agent.sock"
    log = tmp_path / "agent.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "multinet.cli", "agent", "--node", "probe-node",
                                 "--kubeconfig", str(kubeconfig), "--socket", str(sock),
                                 "--state-dir", str(tmp_path / "state")], stdout=out, stderr=subprocess.STDOUT)
    env = {"MULTINET_CNI_SOCKET": str(sock)}
    try:
        deadline = time.monotonic() + 60
        while not sock.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sock.exists(), log.read_text()[-2000:]
        for kind, command in probes.items():
            ran = in_image(image_root, command, binds=(tmp_path,), env=env)
            assert ran.returncode == 0, (kind, ran.stdout, ran.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for kind, command in probes.items():
        assert in_image(image_root, command, binds=(tmp_path,), env=env).returncode != 0, kind
    assert "Traceback" not in log.read_text()  # a probe is a whole exchange, never a hang-up

