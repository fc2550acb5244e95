"""The local control plane, against the real apiserver it starts."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from kube import pki
from multinet.cluster.control_plane import ControlPlane
from multinet.cluster.kubeconfig import write_kubeconfig
from multinet.cluster.layout import Layout, Ports
from multinet.cluster.processes import ComponentError, is_running, process_start_time

pytestmark = pytest.mark.cluster

CRD_GROUP = "test.multinet.io"


def api(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(str(kubeconfig))


@pytest.fixture(scope="module")
def widget_crd(kubeconfig: Path) -> Iterator[str]:
    """A throwaway CRD, cluster-wide, removed after the module."""
    ext = client.ApiextensionsV1Api(api(kubeconfig))
    name = f"widgets.{CRD_GROUP}"
    body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": CRD_GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}},
                }},
            }],
        },
    }
    try:
        ext.create_custom_resource_definition(body)  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
    except ApiException as err:
        if err.status != 409:
            raise
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        crd = ext.read_custom_resource_definition(name)
        listed_conditions = crd.status.conditions if crd.status is not None else None
        conditions = {c.type: c.status for c in (listed_conditions or [])}
        if conditions.get("Established") == "True":
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"CRD {name} never became Established")
    yield name
    ext.delete_custom_resource_definition(name)


def test_crd_create_get_watch(kubeconfig: Path, widget_crd: str) -> None:
    custom = client.CustomObjectsApi(api(kubeconfig))
    name = f"w-{uuid.uuid4().hex[:8]}"
    stream = watch.Watch()
    listed = custom.list_namespaced_custom_object(CRD_GROUP, "v1", "default", "widgets")
    custom.create_namespaced_custom_object(
        CRD_GROUP, "v1", "default", "widgets",
        {"apiVersion": f"{CRD_GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"size": 3}},
    )
    got = custom.get_namespaced_custom_object(CRD_GROUP, "v1", "default", "widgets", name)
    assert got["spec"]["size"] == 3
    seen = []
    for event in stream.stream(
        custom.list_namespaced_custom_object, CRD_GROUP, "v1", "default", "widgets",
        resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=20,
    ):
        assert event is not None and event["type"] != "BOOKMARK"  # no blank line, no bookmark asked for
        seen.append((event["type"], event["object"]["metadata"]["name"]))
        if seen[-1] == ("ADDED", name):
            stream.stop()  # type: ignore[attr-defined]  # Watch.stop is missing from the kubernetes stubs
    assert ("ADDED", name) in seen
    custom.delete_namespaced_custom_object(CRD_GROUP, "v1", "default", "widgets", name)


def test_rbac_denies_unprivileged_client_cert(control_plane: ControlPlane, tmp_path: Path) -> None:
    pki_dir = control_plane.layout.pki
    ca = pki.KeyPair(pki_dir / "ca.crt", pki_dir / "ca.key")
    nobody = pki.issue(ca, tmp_path, "nobody", "multinet-test-nobody")
    path = tmp_path / "nobody.kubeconfig"
    write_kubeconfig(path, control_plane.server, ca.cert, nobody, "nobody")
    core = client.CoreV1Api(api(path))
    with pytest.raises(ApiException) as denied:
        core.list_namespaced_secret("kube-system")
    assert denied.value.status == 403
    assert denied.value.body is not None
    assert "multinet-test-nobody" in denied.value.body  # authenticated, then refused


def test_garbage_collector_deletes_dependents(kubeconfig: Path) -> None:
    core = client.CoreV1Api(api(kubeconfig))
    suffix = uuid.uuid4().hex[:8]
    owner = core.create_namespaced_config_map(
        "default", {"metadata": {"name": f"owner-{suffix}"}, "data": {"a": "1"}}  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
    )
    assert owner.metadata is not None and owner.metadata.name is not None
    core.create_namespaced_config_map("default", {  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        "metadata": {
            "name": f"dependent-{suffix}",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap",
                "name": owner.metadata.name, "uid": owner.metadata.uid,
            }],
        },
    })
    core.delete_namespaced_config_map(owner.metadata.name, "default")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_config_map(f"dependent-{suffix}", "default")
        except ApiException as err:
            assert err.status == 404
            return
        time.sleep(0.5)
    pytest.fail("the garbage collector did not delete the dependent ConfigMap")


def test_service_account_token_controller(kubeconfig: Path) -> None:
    """A new namespace gets its `default` ServiceAccount from the controller-manager."""
    core = client.CoreV1Api(api(kubeconfig))
    ns = f"mn-sa-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(sa.metadata is not None and sa.metadata.name == "default" for sa in core.list_namespaced_service_account(ns).items):
                return
            time.sleep(0.5)
        pytest.fail("no default ServiceAccount appeared")
    finally:
        core.delete_namespace(ns)


def test_kubectl_readyz(kubeconfig: Path, bin_dir: Path) -> None:
    out = subprocess.run(
        [str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), "get", "--raw", "/readyz"],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "ok"


def test_binaries_report_pinned_version(bin_dir: Path) -> None:
    out = subprocess.run([str(bin_dir / "kube-apiserver"), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith("Kubernetes v1.34.")
    kubectl = subprocess.run([str(bin_dir / "kubectl"), "version", "--client"], capture_output=True, text=True, check=True)
    assert "v1.34." in kubectl.stdout


def test_status_reports_every_component_healthy(control_plane: ControlPlane) -> None:
    rows = control_plane.status()
    assert [h.name for h in rows] == ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    assert all(h.state == "healthy" and h.pid for h in rows), rows


# A second, private control plane on other ports: `down` is tested on it so
# the session's cluster stays up.
OTHER_PORTS = Ports(etcd_client=12379, etcd_peer=12380, apiserver=16443, controller_manager=20257, scheduler=20259)


def test_up_is_idempotent_and_down_leaves_nothing(tmp_path: Path, bin_dir: Path) -> None:
    plane = ControlPlane(Layout(tmp_path / "cluster"), bin_dir, OTHER_PORTS)
    lines: list[str] = []
    assert plane.up(lines.append) is True
    records = [plane.record(c.name) for c in plane.components]
    assert all(r is not None and is_running(r) for r in records)
    assert plane.up(lines.append) is False  # already up: a no-op
    plane.down(lines.append)
    for r in records:
        assert r is not None
        assert process_start_time(r.pid) is None or process_start_time(r.pid) != r.start_time
    assert not (tmp_path / "cluster").exists()


def test_taken_port_names_the_component(tmp_path: Path, bin_dir: Path) -> None:
    import socket

    ports = Ports(etcd_client=13379, etcd_peer=13380, apiserver=17443, controller_manager=21257, scheduler=21259)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports.etcd_client))
        squatter.listen()
        plane = ControlPlane(Layout(tmp_path / "cluster"), bin_dir, ports)
        with pytest.raises(ComponentError, match=r"^etcd: port 127.0.0.1:13379 is taken"):
            plane.up(lambda _: None)
    plane.down(lambda _: None)


def test_component_that_exits_early_reports_its_log(tmp_path: Path, bin_dir: Path) -> None:
    broken = tmp_path / "bin"
    broken.mkdir()
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"):
        (broken / name).symlink_to(bin_dir / name)
    (broken / "etcd").write_text("#!/bin/sh\necho 'etcd: cannot open data dir' >&2\nexit 3\n")
    (broken / "etcd").chmod(0o755)
    ports = Ports(etcd_client=14379, etcd_peer=14380, apiserver=18443, controller_manager=22257, scheduler=22259)
    plane = ControlPlane(Layout(tmp_path / "cluster"), broken, ports)
    with pytest.raises(ComponentError) as err:
        plane.up(lambda _: None, timeout=10)
    assert str(err.value).startswith("etcd: ")
    assert "cannot open data dir" in str(err.value)
    plane.down(lambda _: None)
