"""The kind recipe, as far as it can be checked without a container engine: the scripts
pass shellcheck, the cluster config is what kind reads, the demo's manifests pass a
server-side dry run, and the image tag the scripts build is the one deploy/ names."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from multinet.cluster import addon
from tests.deploy.conftest import api_client, core_api, repo_path

SCRIPTS = ("hack/kind-demo", "hack/images/multinet")


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_passes_shellcheck(script: str) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("needs shellcheck (Debian's package; hack/setup installs it)")
    done = subprocess.run(["shellcheck", "--severity=style", script], cwd=addon.REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_is_strict_and_executable(script: str) -> None:
    path = repo_path(script)
    assert path.stat().st_mode & 0o111
    assert "set -euo pipefail" in path.read_text()


def test_kind_config_has_one_control_plane_and_two_workers() -> None:
    doc = yaml.safe_load(repo_path("hack", "kind", "cluster.yaml").read_text())
    assert (doc["kind"], doc["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert [n["role"] for n in doc["nodes"]] == ["control-plane", "worker", "worker"]
    # The demo places its pods by these labels.
    assert [n.get("labels", {}).get("multinet.io/demo-node") for n in doc["nodes"]] == [None, "a", "b"]
    for patch in doc["containerdConfigPatches"]:
        tomllib.loads(patch)  # kind merges them into containerd's TOML: they must parse
    for patch in doc["kubeadmConfigPatches"]:
        assert yaml.safe_load(patch)["kind"] == "KubeletConfiguration"


def test_images_are_tagged_with_the_project_version(rendered: dict[str, list[dict[str, Any]]]) -> None:
    version = re.search(r'^version = "(.*)"$', repo_path("pyproject.toml").read_text(), re.M)
    assert version is not None
    base = yaml.safe_load(repo_path("deploy", "base", "kustomization.yaml").read_text())
    assert base["images"] == [{"name": "localhost/multinet", "newTag": version.group(1)}]
    assert "localhost/multinet:$version" in repo_path("hack", "kind-demo").read_text()


def test_demo_places_pods_on_both_workers() -> None:
    docs = [d for d in yaml.safe_load_all(repo_path("hack", "kind", "demo.yaml").read_text()) if d]
    pods = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Pod"}
    nodes = {p["spec"]["nodeSelector"]["multinet.io/demo-node"] for p in pods.values()}
    assert nodes == {"a", "b"}
    assert pods["du"]["spec"]["nodeSelector"] != pods["cu"]["spec"]["nodeSelector"]  # across nodes
    upfs = {p["spec"]["nodeSelector"]["multinet.io/demo-node"] for n, p in pods.items() if n.startswith("upf")}
    assert upfs == {"a", "b"}
    for pod in pods.values():
        (c,) = pod["spec"]["containers"]
        assert c["image"].startswith("registry.k8s.io/e2e-test-images/agnhost:") and c["args"][0] == "netexec"


@pytest.mark.cluster
def test_demo_manifests_pass_a_server_side_dry_run(kubeconfig: Path, kubectl: str,
                                                   rendered: dict[str, list[dict[str, Any]]]) -> None:
    crds = [o for o in rendered["base"] if o["kind"] == "CustomResourceDefinition"]
    addon.apply(crds, kubeconfig, kubectl)
    core = core_api(api_client(str(kubeconfig)))
    existing = {ns.metadata.name for ns in core.list_namespace().items}
    made = [ns for ns in ("ran", "core") if ns not in existing]
    for ns in made:
        core.create_namespace({"metadata": {"name": ns}})
    try:
        done = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "apply", "--dry-run=server", "-f",
                               str(repo_path("hack", "kind", "demo.yaml"))], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("(server dry run)") == 16
    finally:
        for ns in made:
            core.delete_namespace(ns)
