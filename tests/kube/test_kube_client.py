"""The verbs against the real apiserver: each failure raised typed and chained to the client's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kube import (AlreadyExists, Conflict, Forbidden, Gone, Invalid, Kube, KubeError, NotFound, PatchType, Resource,
                  Unreachable)
from kube.resources import NAMESPACES, PODS
from tests.kube.conftest import suffix, widget
from tests.support.wait import SERVICE_ACCOUNTS

pytestmark = pytest.mark.cluster

CONFIGMAPS = Resource("", "v1", "configmaps", kind="ConfigMap")


def configmap(name: str, **labels: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels},
            "data": {"k": "v"}}


def cause_status(exc: BaseException) -> int | None:
    """The status of the client's ApiException the typed error is chained to."""
    assert isinstance(exc.__cause__, ApiException), repr(exc.__cause__)
    return exc.__cause__.status


def test_missing_object_is_not_found_and_find_says_none(kube: Kube, namespace: str) -> None:
    with pytest.raises(NotFound) as exc:
        kube.get(CONFIGMAPS, "absent", namespace)
    assert exc.value.status == 404 and exc.value.reason == "NotFound"
    assert cause_status(exc.value) == 404
    assert 'configmaps "absent" not found' in str(exc.value)
    assert kube.find(CONFIGMAPS, "absent", namespace) is None
    with pytest.raises(NotFound):
        kube.delete(CONFIGMAPS, "absent", namespace)


def test_taken_name_is_already_exists_not_conflict(kube: Kube, namespace: str) -> None:
    kube.create(CONFIGMAPS, configmap("one"), namespace)
    with pytest.raises(AlreadyExists) as exc:
        kube.create(CONFIGMAPS, configmap("one"), namespace)
    assert not isinstance(exc.value, Conflict) and not exc.value.temporary
    assert exc.value.reason == "AlreadyExists" and cause_status(exc.value) == 409
    assert exc.value.details["name"] == "one"


def test_stale_resource_version_is_conflict(kube: Kube, namespace: str) -> None:
    first = kube.create(CONFIGMAPS, configmap("cm"), namespace)
    kube.patch(CONFIGMAPS, "cm", {"data": {"k": "changed"}}, namespace)
    with pytest.raises(Conflict) as exc:
        kube.replace(CONFIGMAPS, "cm", {**first, "data": {"k": "stale"}}, namespace)
    assert exc.value.temporary and cause_status(exc.value) == 409
    assert kube.get(CONFIGMAPS, "cm", namespace)["data"] == {"k": "changed"}


def test_delete_with_a_predecessors_uid_is_conflict(kube: Kube, namespace: str) -> None:
    kube.create(CONFIGMAPS, configmap("cm"), namespace)
    with pytest.raises(Conflict):
        kube.delete(CONFIGMAPS, "cm", namespace, uid="00000000-0000-0000-0000-000000000000")
    uid = kube.get(CONFIGMAPS, "cm", namespace)["metadata"]["uid"]
    kube.delete(CONFIGMAPS, "cm", namespace, uid=uid)
    assert kube.find(CONFIGMAPS, "cm", namespace) is None


def test_invalid_object_names_the_field(kube: Kube, namespace: str) -> None:
    with pytest.raises(Invalid) as exc:
        kube.create(CONFIGMAPS, configmap("Not_A_Name"), namespace)
    assert cause_status(exc.value) == 422
    assert [c["field"] for c in exc.value.details["causes"]] == ["metadata.name"]


def test_failed_json_patch_test_is_refused_and_changes_nothing(kube: Kube, namespace: str) -> None:
    kube.create(CONFIGMAPS, configmap("cm"), namespace)
    ops = [{"op": "test", "path": "/data/k", "value": "other"}, {"op": "replace", "path": "/data/k", "value": "x"}]
    with pytest.raises(KubeError) as exc:
        kube.patch(CONFIGMAPS, "cm", ops, namespace)
    assert isinstance(exc.value, (Invalid, Conflict)), exc.value
    assert kube.get(CONFIGMAPS, "cm", namespace)["data"] == {"k": "v"}
    ops[0]["value"] = "v"
    assert kube.patch(CONFIGMAPS, "cm", ops, namespace)["data"] == {"k": "x"}


def test_strategic_merge_keeps_other_list_entries(kube: Kube, namespace: str) -> None:
    kube.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "a", "image": "registry.k8s.io/pause:3.10"}]}}, namespace)
    patched = kube.patch(PODS, "p", {"spec": {"containers": [{"name": "a", "image": "registry.k8s.io/pause:3.9"}]}},
                         namespace, patch_type=PatchType.STRATEGIC)
    assert [c["image"] for c in patched["spec"]["containers"]] == ["registry.k8s.io/pause:3.9"]
    kube.delete(PODS, "p", namespace, grace_period_seconds=0)


def test_no_grant_is_forbidden(kubeconfig: object, namespace: str) -> None:
    nobody = Kube.from_kubeconfig(str(kubeconfig))
    nobody.api.set_default_header(  # type: ignore[attr-defined]  # missing from the stubs
        "Impersonate-User", f"mnk-nobody-{suffix()}")
    with pytest.raises(Forbidden) as exc:
        nobody.list(CONFIGMAPS, namespace)
    assert cause_status(exc.value) == 403 and not exc.value.temporary


def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = client.Configuration()
    cfg.host = f"https://127.0.0.1:{port}"
    cfg.retries = 0
    with pytest.raises(Unreachable) as exc:
        Kube(client.ApiClient(cfg)).list(NAMESPACES)
    assert exc.value.temporary and exc.value.__cause__ is not None


def test_list_reads_every_page_of_one_snapshot(kube: Kube, namespace: str) -> None:
    tag = suffix()
    for i in range(7):
        kube.create(CONFIGMAPS, configmap(f"cm{i}", batch=tag), namespace)
    kube.create(CONFIGMAPS, configmap("other"), namespace)
    pages = list(kube.pages(CONFIGMAPS, namespace, label_selector=f"batch={tag}", page_size=3))
    assert [len(p["items"]) for p in pages] == [3, 3, 1]
    listing = kube.listing(CONFIGMAPS, namespace, label_selector=f"batch={tag}")
    assert sorted(o["metadata"]["name"] for o in listing.items) == [f"cm{i}" for i in range(7)]
    assert listing.resource_version == pages[0]["metadata"]["resourceVersion"]


def test_merge_patch_of_a_custom_object(kube: Kube, namespace: str, widgets: Resource) -> None:
    kube.create(widgets, widget(widgets, "w", size=1), namespace)
    kube.patch(widgets, "w", {"spec": {"size": 2}}, namespace)
    assert kube.get(widgets, "w", namespace)["spec"] == {"size": 2}
    kube.delete(widgets, "w", namespace)


def test_watch_from_an_expired_version_is_gone(kube: Kube, namespace: str, widgets: Resource) -> None:
    kube.create(widgets, widget(widgets, "w"), namespace)
    with pytest.raises(Gone) as exc:
        with kube.watch(widgets, namespace, resource_version="1", timeout_seconds=5) as stream:
            list(stream)
    assert exc.value.status == 410 and exc.value.reason == "Expired" and exc.value.temporary
    assert cause_status(exc.value) == 410  # an in-stream ERROR event, chained like an HTTP error


# A process that reaches the apiserver twice (the second request passes the
# client's refresh hook with what the first left), loads the configuration's
# files as another client would, says so, then waits to be killed.
_HOLDER = """
import ssl, sys, time
from kubernetes import client
from kube import Kube
kube = Kube.from_kubeconfig(sys.argv[1])
api = client.VersionApi(kube.api)
api.get_code()
api.get_code()
cfg = kube.configuration
# what a second client built from this configuration (kopf's) loads
context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
if cfg.cert_file:
    context.load_cert_chain(cfg.cert_file, cfg.key_file)
print("reached", flush=True)
time.sleep(120)
"""


def _token_kubeconfig(kube: Kube, admin_config: Path, namespace: str, path: Path) -> Path:
    """A kubeconfig holding a service account's token and the admin's inline CA (as a pod's
    credentials are written out): the client gives it a refresh hook that sets the CA again."""
    kube.create(SERVICE_ACCOUNTS, {"metadata": {"name": "holder"}}, namespace)
    granted = client.CoreV1Api(kube.api).create_namespaced_service_account_token(
        "holder", namespace, client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)))
    assert granted.status is not None
    token = granted.status.token
    cluster = yaml.safe_load(admin_config.read_text())["clusters"][0]["cluster"]
    assert "certificate-authority-data" in cluster, "the admin kubeconfig holds its CA inline"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "holder", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "holder"}}], "current-context": "c"}))
    return path


@pytest.mark.parametrize("credentials", ["client certificate", "token"])
def test_a_killed_process_leaves_no_credentials_on_disk(kube: Kube, kubeconfig: Path, namespace: str,
                                                        tmp_path: Path, credentials: str) -> None:
    """The kubeconfig's inline key and certificates never outlive the process
    in a file: a SIGKILL (no atexit) leaves its temporary directory empty."""
    assert "client-key-data" in kubeconfig.read_text(), "the fixture's kubeconfig holds its key inline"
    used = kubeconfig if credentials == "client certificate" else _token_kubeconfig(
        kube, kubeconfig, namespace, tmp_path / "token-kubeconfig")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(used)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp)})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "reached", proc.wait()
        held = {os.readlink(fd) for fd in Path(f"/proc/{proc.pid}/fd").iterdir()}
    finally:
        proc.kill()
        proc.wait()
    assert sorted(tmp.rglob("*")) == []
    # where they were instead: memory the process held (and the kernel freed with it)
    expected = ({"/memfd:kubeconfig-key_file (deleted)", "/memfd:kubeconfig-cert_file (deleted)"}
                if credentials == "client certificate" else {"/memfd:kubeconfig-ssl_ca_cert (deleted)"})
    assert expected <= held, held
