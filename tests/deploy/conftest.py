"""Fixtures of the deploy tests: the rendered overlays and the tools they need."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from multinet.cluster import addon
from multinet.cluster.binaries import find_bin_dir

OVERLAYS = ("base", "overlays/kind", "overlays/local")
IDENTITY_KINDS = {"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                  "Role", "RoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
TEST_NS = "deploy-test"


@pytest.fixture(scope="session")
def kubectl() -> str:
    """The project's kubectl (its kustomize renders deploy/), else one on PATH."""
    try:
        return str(find_bin_dir(None, build=False) / "kubectl")
    except Exception:  # no cache yet: any kubectl with kustomize will do
        found = shutil.which("kubectl")
        if found is None:
            pytest.skip("no kubectl: run hack/setup")
        return found


@pytest.fixture(scope="session")
def rendered(kubectl: str) -> dict[str, list[dict[str, Any]]]:
    """`kubectl kustomize` of every overlay, image as the manifests name it."""
    return {name: addon.render(addon.DEPLOY / name, "localhost/multinet:0.1.0", kubectl) for name in OVERLAYS}


def api_client(kubeconfig: str) -> Any:
    """An API client for `kubeconfig`, untyped: the tests build bodies as plain dicts."""
    from kubernetes import config

    return config.new_client_from_config(kubeconfig)


def core_api(api: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api)


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind} {name} among {[(o['kind'], o['metadata']['name']) for o in objects]}")


def pod_spec(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = find(objects, kind, name)["spec"]["template"]["spec"]
    return spec


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    for c in spec.get("initContainers", []) + spec["containers"]:
        if c["name"] == name:
            return dict(c)
    raise AssertionError(f"no container {name}")


def repo_path(*parts: str) -> Path:
    return addon.REPO.joinpath(*parts)


# --- the multinet image, built (or reused) and unpacked ----------------------------------

IMAGE_SCRIPT = repo_path("hack", "images", "multinet")
IMAGE_PATH = "/opt/multinet/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def build_image() -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(IMAGE_SCRIPT)], capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="session")
def image_archive() -> Path:
    """hack/images/multinet's archive: built unless one of the same inputs is cached."""
    if os.geteuid() != 0:
        pytest.skip("needs root: mmdebstrap and buildah with private storage")
    for tool in ("buildah", "mmdebstrap"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (hack/setup installs it)")
    built = build_image()
    assert built.returncode == 0, built.stderr[-3000:]
    return Path(built.stdout.strip().splitlines()[-1])


def unpack(archive: Path, root: Path) -> None:
    """The image's layers in order, as a runtime lays them out (whiteouts remove)."""
    with tarfile.open(archive) as outer:
        member = outer.extractfile("manifest.json")
        assert member is not None
        layers = json.load(member)[0]["Layers"]
        for name in layers:
            layer = outer.extractfile(name)
            assert layer is not None
            with tarfile.open(fileobj=layer, mode="r|") as tar:
                for entry in tar:
                    path = Path(entry.name)
                    if path.name.startswith(".wh."):
                        target = root / path.parent / path.name[len(".wh."):]
                        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
                        continue
                    tar.extract(entry, root, set_attrs=True, filter="fully_trusted")


@pytest.fixture(scope="session")
def image_root(image_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("image") / "rootfs"
    root.mkdir()
    unpack(image_archive, root)
    return root


def in_image(root: Path, argv: list[str], binds: tuple[Path, ...] = (), env: dict[str, str] | None = None,
             stdin: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` in the image as a container would see it: its own root, /proc and /dev
    in a private mount namespace, the host's network namespace, `binds` at their own paths."""
    mounts = [f"mount --rbind /dev {shlex.quote(str(root / 'dev'))}",
              f"mount -t proc proc {shlex.quote(str(root / 'proc'))}"]
    for path in binds:
        inside = root / path.relative_to("/")
        inside.mkdir(parents=True, exist_ok=True)
        mounts.append(f"mount --rbind {shlex.quote(str(path))} {shlex.quote(str(inside))}")
    variables = {"PATH": IMAGE_PATH, **(env or {})}
    command = " && ".join(mounts) + " && exec chroot " + shlex.quote(str(root)) + " /usr/bin/env -i " + " ".join(
        shlex.quote(f"{k}={v}") for k, v in variables.items()) + " " + shlex.join(argv)
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "--fork", "sh", "-c", command],
                          input=stdin, capture_output=True, timeout=timeout)


@pytest.fixture(scope="session")
def admin(kubeconfig: Path) -> Any:
    return api_client(str(kubeconfig))


@pytest.fixture(scope="session")
def identities(kubeconfig: Path, kubectl: str, rendered: dict[str, list[dict[str, Any]]],
               admin: Any) -> Iterator[None]:
    """The namespace, CRDs, ServiceAccounts, RBAC and admission policy of deploy/base,
    applied for real (the workloads are not: these tests run the parts themselves);
    once a session, as a namespace being deleted cannot be applied again at once."""
    objects = [o for o in rendered["base"] if o["kind"] in IDENTITY_KINDS]
    addon.apply(objects, kubeconfig, kubectl)
    core = core_api(admin)
    core.create_namespace({"metadata": {"name": TEST_NS}})
    try:
        yield
    finally:
        core.delete_namespace(TEST_NS)
        # Everything but the CRDs (other tests of the session use them) and the namespace's contents.
        made = [o for o in objects if o["kind"] not in ("CustomResourceDefinition",)]
        subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "delete", "--ignore-not-found", "--wait=false",
                        "-f", "-"], input=yaml.safe_dump_all(made), capture_output=True, text=True, check=True)
