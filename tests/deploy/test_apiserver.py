"""deploy/ against the real local apiserver: every overlay passes a server-side dry run,
and the RBAC and admission policy hold the controller and the agent to what they need.

The agent and the controller run here as processes under exactly the identities
the manifests give them (a token bound to a pod on a node, a ServiceAccount
user), so a missing rule shows as the part failing, not as a list compared.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kube import pki
from tests.support.wait import wait_for
from multinet.cluster import addon
from multinet.cluster.control_plane import ControlPlane
from multinet.cluster.kubeconfig import write_kubeconfig
from tests.conftest import require_root
from tests.deploy.conftest import OVERLAYS, TEST_NS, api_client, core_api

pytestmark = pytest.mark.cluster

STATUS_KEY = "multinetwork.networking.x-k8s.io/network-status"


# --- server-side dry runs ----------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_passes_a_server_side_dry_run(identities: None, kubeconfig: Path, kubectl: str,
                                              overlay: str) -> None:
    """As a user applies it (`kubectl apply -k`): the apiserver validates every object
    (pod specs, probes, RBAC, CEL) and stores none."""
    proc = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "apply", "-k", str(addon.DEPLOY / overlay),
                           "--dry-run=server"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len([o for o in addon.render(addon.DEPLOY / overlay, "localhost/multinet:0.1.0", kubectl)])
    assert all(line.endswith("(server dry run)") for line in lines)
    apps = client.AppsV1Api(api_client(str(kubeconfig)))
    assert apps.list_namespaced_daemon_set("multinet-system").items == []  # nothing stored


def test_local_install_as_rendered_passes_a_dry_run(identities: None, kubeconfig: Path, kubectl: str) -> None:
    local = addon.LocalCluster(Path("/srv/cluster/nodes"), "10.254.0.254", 6443, "mn-")
    objects = addon.render(addon.DEPLOY / "overlays" / "local", "localhost/multinet:0.1.0", kubectl, local)
    out = addon.apply(objects, kubeconfig, kubectl, dry_run=True)
    assert out.count("(server dry run)") == len(objects)


def test_dry_run_refuses_a_broken_daemonset_by_field(identities: None, kubeconfig: Path, kubectl: str,
                                                     rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The dry run above is a real check: a bad field in a DaemonSet is refused, named."""
    (node,) = [json.loads(json.dumps(o)) for o in rendered["base"]
               if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "multinet-node"]
    node["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["type"] = "Sometimes"
    with pytest.raises(addon.AddonError, match=r"spec\.template\.spec\.volumes\[0\]\.hostPath\.type"):
        addon.apply([node], kubeconfig, kubectl, dry_run=True)


def test_wait_names_what_is_not_ready_and_why(identities: None, kubeconfig: Path, kubectl: str,
                                              rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The workloads on a cluster without nodes: nothing schedules, and the wait says so,
    per workload and per pod, when its time is up."""
    workloads = [o for o in rendered["base"] if o["kind"] in ("Deployment", "DaemonSet", "ConfigMap", "Service")]
    addon.apply(workloads, kubeconfig, kubectl)
    lines: list[str] = []
    with pytest.raises(addon.AddonError) as err:
        addon.wait_ready(kubeconfig, lines.append, kubectl, timeout=5, interval=0.5)
    message = str(err.value)
    assert "multinet-controller 0/2" in message
    assert "multinet-controller-" in message and "on unscheduled: Pending" in message
    assert lines and lines[0].startswith("multinet: multinet-controller 0/2")
    assert len(set(lines)) == len(lines)  # a line only when something changed
    for obj in workloads:
        subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "delete", "-n", "multinet-system", "--wait=false",
                        f"{obj['kind'].lower()}/{obj['metadata']['name']}"], capture_output=True, check=True)


# --- the agent: RBAC plus the admission policy --------------------------------------------

@pytest.fixture(scope="module")
def nodes(identities: None, admin: Any) -> Iterator[tuple[str, str]]:
    """Two Node objects (no kubelet: the agent's identity is all these tests need)."""
    core = core_api(admin)
    names = (f"deploy-test-a-{uuid.uuid4().hex[:4]}", f"deploy-test-b-{uuid.uuid4().hex[:4]}")
    for name in names:
        core.create_node({"metadata": {"name": name, "labels": {"kubernetes.io/os": "linux"}}})
    try:
        yield names
    finally:
        for name in names:
            core.delete_node(name)


def _pod(core: Any, namespace: str, name: str, node: str, account: str = "default") -> Any:
    return core.create_namespaced_pod(namespace, {
        "metadata": {"name": name, "annotations": {"other": "kept"}},
        "spec": {"nodeName": node, "serviceAccountName": account,
                 "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10.1"}]}})


def _kubeconfig_with_token(path: Path, admin_config: Path, token: str) -> Path:
    cluster = yaml.safe_load(admin_config.read_text())["clusters"][0]["cluster"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "agent", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "agent"}}], "current-context": "c"}))
    return path


@pytest.fixture(scope="module")
def agent_config(nodes: tuple[str, str], admin: Any, kubeconfig: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A kubeconfig with the agent's token as kubelet gives it: bound to an agent pod on node A."""
    core = core_api(admin)
    _pod(core, "multinet-system", "agent-identity", nodes[0], "multinet-agent")
    try:
        token = core.create_namespaced_service_account_token("multinet-agent", "multinet-system", {
            "spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "agent-identity"},
                     "expirationSeconds": 3600}}).status.token
        yield _kubeconfig_with_token(tmp_path_factory.mktemp("agent") / "kubeconfig", kubeconfig, token), nodes[0]
    finally:
        core.delete_namespaced_pod("agent-identity", "multinet-system", grace_period_seconds=0)


@pytest.fixture
def pods(nodes: tuple[str, str], admin: Any) -> Iterator[tuple[str, str]]:
    core = core_api(admin)
    here, there = f"here-{uuid.uuid4().hex[:6]}", f"there-{uuid.uuid4().hex[:6]}"
    _pod(core, TEST_NS, here, nodes[0])
    _pod(core, TEST_NS, there, nodes[1])
    yield here, there
    for name in (here, there):
        core.delete_namespaced_pod(name, TEST_NS, grace_period_seconds=0)


def _as_agent(agent_config: tuple[Path, str]) -> Any:
    return core_api(api_client(str(agent_config[0])))


def _forbidden(call: Callable[[], Any]) -> str:
    with pytest.raises(ApiException) as err:
        call()
    assert err.value.status == 403, err.value.body
    return str(json.loads(err.value.body or "{}")["message"])


def test_agent_writes_network_status_of_its_own_node_s_pods(agent_config: tuple[Path, str],
                                                             pods: tuple[str, str]) -> None:
    agent, (here, _) = _as_agent(agent_config), pods
    condition = {"type": "multinetwork.networking.x-k8s.io/networks-attached", "status": "True"}
    # The agent's one write: both through pods/status.
    agent.patch_namespaced_pod_status(here, TEST_NS, {"metadata": {"annotations": {STATUS_KEY: "[]"}},
                                                      "status": {"conditions": [condition]}})
    got = agent.read_namespaced_pod(here, TEST_NS)
    # The agent's key written, the others kept. Exactly these two cannot be asked: a multinet
    # admission webhook still registered by an earlier test defaults the pod's networks too.
    annotations = got.metadata.annotations
    assert annotations[STATUS_KEY] == "[]" and annotations["other"] == "kept", annotations
    assert any(c.type == condition["type"] and c.status == "True" for c in got.status.conditions)


def test_agent_may_not_touch_another_node_s_pods(agent_config: tuple[Path, str], pods: tuple[str, str]) -> None:
    agent, (_, there) = _as_agent(agent_config), pods
    message = _forbidden(lambda: agent.patch_namespaced_pod_status(
        there, TEST_NS, {"metadata": {"annotations": {STATUS_KEY: "[]"}}}))
    assert "multinet-agent-own-node" in message and f"node {agent_config[1]} may change only pods on that node" in message
    condition = {"type": "multinetwork.networking.x-k8s.io/networks-attached", "status": "True"}
    _forbidden(lambda: agent.patch_namespaced_pod_status(there, TEST_NS, {"status": {"conditions": [condition]}}))


@pytest.mark.parametrize(("patch", "says"), [
    ({"metadata": {"annotations": {"other": "changed"}}}, "only the network-status annotations"),
    ({"metadata": {"annotations": {"other": None}}}, "only the network-status annotations"),
    ({"metadata": {"labels": {"app": "x"}}}, "may not change a pod's labels"),
])
def test_agent_changes_nothing_else_on_its_pods(agent_config: tuple[Path, str], pods: tuple[str, str],
                                                 patch: dict[str, Any], says: str) -> None:
    agent, (here, _) = _as_agent(agent_config), pods
    assert says in _forbidden(lambda: agent.patch_namespaced_pod_status(here, TEST_NS, patch))


def test_agent_may_not_patch_the_pod_itself(agent_config: tuple[Path, str], pods: tuple[str, str]) -> None:
    """Its writes go through pods/status alone: RBAC refuses the pod's own resource, even
    for the network-status annotation of a pod on its node."""
    agent, (here, _) = _as_agent(agent_config), pods
    message = _forbidden(lambda: agent.patch_namespaced_pod(
        here, TEST_NS, {"metadata": {"annotations": {STATUS_KEY: "[]"}}}))
    assert 'cannot patch resource "pods"' in message, message


def test_agent_may_not_create_or_delete_pods_or_read_secrets(agent_config: tuple[Path, str],
                                                             pods: tuple[str, str]) -> None:
    agent, (here, _) = _as_agent(agent_config), pods
    assert "cannot delete resource" in _forbidden(lambda: agent.delete_namespaced_pod(here, TEST_NS))
    assert "cannot list resource \"secrets\"" in _forbidden(lambda: agent.list_namespaced_secret(TEST_NS))
    assert "cannot patch resource \"nodes\"" in _forbidden(lambda: agent.patch_node(agent_config[1], {
        "metadata": {"labels": {"x": "y"}}}))


def test_a_token_without_a_node_is_refused(identities: None, admin: Any, kubeconfig: Path,
                                           pods: tuple[str, str], tmp_path: Path) -> None:
    token = core_api(admin).create_namespaced_service_account_token(
        "multinet-agent", "multinet-system", {"spec": {"expirationSeconds": 600}}).status.token
    agent = core_api(api_client(str(_kubeconfig_with_token(
        tmp_path / "kubeconfig", kubeconfig, token))))
    message = _forbidden(lambda: agent.patch_namespaced_pod_status(pods[0], TEST_NS, {
        "metadata": {"annotations": {STATUS_KEY: "[]"}}}))
    assert "must use a token bound to its pod" in message


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_agent_runs_under_its_rbac(agent_config: tuple[Path, str], tmp_path: Path) -> None:
    """The real agent, with the datapath view on (every cache it lists and watches), serves
    its plugin socket only once all have listed: a missing rule would keep it from serving."""
    require_root()
    sock, log = tmp_path / "agent.sock", tmp_path / "agent.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "multinet.cli", "agent", "--node", agent_config[1],
                                 "--kubeconfig", str(agent_config[0]), "--socket", str(sock),
                                 "--state-dir", str(tmp_path / "state"), "--p4runtime", "127.0.0.1:1"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for("the agent serves its socket", lambda: sock.exists() or proc.poll() is not None)
        assert proc.poll() is None, log.read_text()[-3000:]
        status = subprocess.run([sys.executable, "-m", "cni.shim"], input=b'{"cniVersion": "1.1.0", '
                                b'"name": "multinet", "type": "multinet-cni"}',
                                env={"CNI_COMMAND": "STATUS", "MULTINET_CNI_SOCKET": str(sock),
                                     "PATH": os.environ["PATH"]}, capture_output=True, timeout=30)
        assert status.returncode == 0, status.stdout
    finally:
        _stop(proc)
    text = log.read_text()
    assert "Forbidden" not in text and " 403" not in text, text[-3000:]


# --- the controller under its own RBAC ----------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_controller_runs_under_its_rbac(identities: None, control_plane: ControlPlane, admin: Any,
                                        tmp_path: Path) -> None:
    """The real controller as the multinet-controller ServiceAccount user (a client
    certificate naming it; tests/deploy/test_controller_pod.py runs it with a token): it takes the Lease, registers its webhooks, creates `default`,
    admits a pod with a secondary network, allocates its address and lifts its gate."""
    ca = pki.ensure_ca(control_plane.layout.pki)
    user = "system:serviceaccount:multinet-system:multinet-controller"
    pair = pki.issue(ca, tmp_path, "controller", user, "system:serviceaccounts")
    server = yaml.safe_load(control_plane.layout.admin_kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    kubeconfig = tmp_path / "controller.kubeconfig"
    write_kubeconfig(kubeconfig, server, ca.cert, pair, user)
    custom: Any = client.CustomObjectsApi(admin)
    core = core_api(admin)
    net = f"deploy-test-{uuid.uuid4().hex[:6]}"
    log = tmp_path / "controller.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "multinet.cli", "controller", "--kubeconfig", str(kubeconfig),
                                 "--cert-dir", str(tmp_path / "certs"), "--webhook-port", str(_free_port())],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        admission: Any = client.AdmissionregistrationV1Api(admin)
        wait_for("webhooks registered", lambda: proc.poll() is not None or any(
            w.metadata.name == "multinet-controller"
            for w in admission.list_validating_webhook_configuration().items))
        assert proc.poll() is None, log.read_text()[-3000:]
        def default_conditions() -> Any:
            try:
                obj = custom.get_cluster_custom_object("multinetwork.networking.x-k8s.io", "v1alpha1",
                                                       "podnetworks", "default")
            except ApiException as err:
                if err.status != 404:
                    raise
                return None  # not created yet
            return (obj.get("status") or {}).get("conditions")

        wait_for("the default PodNetwork with conditions", default_conditions)
        custom.create_cluster_custom_object("multinet.io", "v1alpha1", "networkparams", {
            "apiVersion": "multinet.io/v1alpha1", "kind": "NetworkParams", "metadata": {"name": net},
            "spec": {"topology": "L2", "ipv4": {"subnet": "10.77.0.0/24", "gateway": "10.77.0.1"}}})
        custom.create_cluster_custom_object("multinetwork.networking.x-k8s.io", "v1alpha1", "podnetworks", {
            "apiVersion": "multinetwork.networking.x-k8s.io/v1alpha1", "kind": "PodNetwork", "metadata": {"name": net},
            "spec": {"provider": "multinet.io",
                     "parametersRefs": [{"group": "multinet.io", "kind": "NetworkParams", "name": net}]}})
        core.create_namespaced_pod(TEST_NS, {
            "metadata": {"name": "attached", "annotations": {
                "multinetwork.networking.x-k8s.io/networks": json.dumps([{"podNetworkName": net,
                                                                          "interfaceName": "net1"}])}},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10.1"}]}})
        pod = wait_for("the gate lifted with an address", lambda: (
            lambda p: p if not p.spec.scheduling_gates and "multinetwork.networking.x-k8s.io/allocations"
            in (p.metadata.annotations or {}) else None)(core.read_namespaced_pod("attached", TEST_NS)))
        assert "10.77.0." in pod.metadata.annotations["multinetwork.networking.x-k8s.io/allocations"]
    finally:
        _stop(proc)
        core.delete_namespaced_pod("attached", TEST_NS, grace_period_seconds=0)
        for group, plural in (("multinetwork.networking.x-k8s.io", "podnetworks"), ("multinet.io", "networkparams")):
            try:
                custom.delete_cluster_custom_object(group, "v1alpha1", plural, net)
            except ApiException as err:
                if err.status != 404:
                    raise
    text = log.read_text()
    assert "Forbidden" not in text and "403" not in text, text[-3000:]
