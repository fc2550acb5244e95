"""`multinet controller` as deploy/base's Deployment runs it: its flags, a ServiceAccount
token (as a pod's), the webhooks registered through the Service, one serving certificate
shared by the replicas through a Secret, /healthz on the standby too, and the leader's
own pod labelled for the Service while it serves admission (never the standby's).

The apiserver here has no route to a Service's ClusterIP (no kube-proxy), so admission
through the Service is not exercised; the certificate the Service's DNS name needs is,
over TLS against the CA in the caBundle.
"""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller import admission
from controller.leader_pod import LEADER_LABEL
from tests.controller.controller_support import ControllerProcess
from tests.deploy.conftest import core_api
from tests.deploy.test_apiserver import _free_port, _kubeconfig_with_token, _stop
from tests.support.wait import wait_for

pytestmark = pytest.mark.cluster

NAMESPACE = "multinet-system"
SERVICE, SECRET = "multinet-webhook", "multinet-webhook-cert"
SERVICE_HOST = f"{SERVICE}.{NAMESPACE}.svc"


def _start(kubeconfig: Path, directory: Path, webhook_port: int, health_port: int) -> subprocess.Popen[bytes]:
    """A replica whose pod (`--pod`) is named as its directory is."""
    directory.mkdir()
    with (directory / "log").open("wb") as out:
        return subprocess.Popen([
            sys.executable, "-m", "multinet.cli", "controller", "--kubeconfig", str(kubeconfig),
            "--webhook-address=127.0.0.1", f"--webhook-port={webhook_port}",
            f"--webhook-service={NAMESPACE}/{SERVICE}", f"--cert-secret={NAMESPACE}/{SECRET}",
            f"--cert-dir={directory / 'certs'}", f"--health-port={health_port}",
            f"--pod={NAMESPACE}/{_pod_name(directory)}"],
            stdout=out, stderr=subprocess.STDOUT)


def _pod_name(directory: Path) -> str:
    return f"controller-test-{directory.name}"


def _pod(core: Any, name: str, labels: dict[str, str]) -> None:
    """The replica's pod, as an API object only (no node runs it here)."""
    wait_for("multinet-system's default service account", lambda: core.list_namespaced_service_account(
        NAMESPACE, field_selector="metadata.name=default").items)
    core.create_namespaced_pod(NAMESPACE, {"metadata": {"name": name, "labels": labels}, "spec": {
        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10.1"}]}})


def _leader_label(core: Any, name: str) -> str | None:
    labels = core.read_namespaced_pod(name, NAMESPACE).metadata.labels or {}
    value: str | None = labels.get(LEADER_LABEL)
    return value


def _healthz(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            status: int = answer.status
            return status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None  # not listening yet


def _handshake(port: int, ca_pem: bytes) -> str:
    """TLS to the webhook port as the apiserver dials the Service: verified for its DNS name."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=SERVICE_HOST) as tls:
            return tls.version() or ""


def _registered(admission_api: Any) -> Any:
    """The configuration once registered through the Service; one an earlier test's controller
    left at its own URL (stopped before its cleanup, as on a loaded machine) does not count."""
    try:
        found = admission_api.read_validating_webhook_configuration(admission.CONFIGURATION_NAME)
    except ApiException as err:
        if err.status != 404:
            raise
        return None
    return found if all(h.client_config.service is not None for h in found.webhooks) else None


@pytest.fixture
def sole_controller(controller: ControllerProcess) -> Iterator[None]:
    """The replicas here must win the cluster's one leader lease: the session's controller,
    which other modules' tests share, steps down for the test and comes back after it
    (with it serving, these replicas waited for the lease and never registered)."""
    controller.require_own()  # a running cluster's own controller is not this test's to stop
    controller.stop()
    try:
        yield
    finally:
        controller.start()


def test_controller_runs_as_its_deployment_runs_it(sole_controller: None, identities: None, admin: Any,
                                                   kubeconfig: Path, tmp_path: Path) -> None:
    core = core_api(admin)
    token = core.create_namespaced_service_account_token(
        "multinet-controller", NAMESPACE, {"spec": {"expirationSeconds": 600}}).status.token
    config = _kubeconfig_with_token(tmp_path / "kubeconfig", kubeconfig, token)
    admission_api: Any = client.AdmissionregistrationV1Api(admin)
    ports = [_free_port() for _ in range(4)]
    first_pod, second_pod = _pod_name(tmp_path / "first"), _pod_name(tmp_path / "second")
    _pod(core, first_pod, {})
    # As a restarted leader's container finds its pod: still labelled.
    _pod(core, second_pod, {LEADER_LABEL: "true"})
    first = _start(config, tmp_path / "first", ports[0], ports[1])
    second: subprocess.Popen[bytes] | None = None
    try:
        registered = wait_for("webhooks registered", lambda: first.poll() is not None or _registered(admission_api),
                              timeout=90)
        assert first.poll() is None, (tmp_path / "first" / "log").read_text()[-3000:]
        secret = core.read_namespaced_secret(SECRET, NAMESPACE)
        ca_pem = base64.b64decode(secret.data["ca.crt"])
        for hook in registered.webhooks:
            cfg = hook.client_config
            assert cfg.url is None
            assert (cfg.service.namespace, cfg.service.name, cfg.service.port) == (NAMESPACE, SERVICE, 443)
            assert cfg.service.path in (f"/{admission.MUTATE_ID}", f"/{admission.VALIDATE_ID}")
            assert base64.b64decode(cfg.ca_bundle) == ca_pem
        assert _handshake(ports[0], ca_pem).startswith("TLS")
        assert _healthz(ports[1]) == 200
        wait_for("the leader's pod labelled", lambda: _leader_label(core, first_pod) == "true", 30)

        # A second replica waits for the lease, alive all the while; it takes over on a
        # clean stop of the first and serves with the certificate from the Secret.
        second = _start(config, tmp_path / "second", ports[2], ports[3])
        wait_for("the standby waits for the lease", lambda: second.poll() is not None or "another replica holds lease"
                 in (tmp_path / "second" / "log").read_text(), timeout=60)
        assert _healthz(ports[3]) == 200
        assert _leader_label(core, second_pod) is None  # removed before it waits: admission goes to the leader only
        _stop(first)
        # It registers the same configurations (an unchanged object: no new resourceVersion).
        wait_for("the standby takes over", lambda: second.poll() is not None or "registered ValidatingWebhook"
                 in (tmp_path / "second" / "log").read_text(), timeout=90)
        assert second.poll() is None, (tmp_path / "second" / "log").read_text()[-3000:]
        assert core.read_namespaced_secret(SECRET, NAMESPACE).data == secret.data
        assert base64.b64decode(_registered(admission_api).webhooks[0].client_config.ca_bundle) == ca_pem
        assert _handshake(ports[2], ca_pem).startswith("TLS")
        assert _healthz(ports[3]) == 200
        assert _leader_label(core, first_pod) is None  # removed on its way out
        wait_for("the new leader's pod labelled", lambda: _leader_label(core, second_pod) == "true", 30)
    finally:
        for proc in (first, second):
            if proc is not None:
                _stop(proc)
        # Registered through a Service, the configurations outlive the replicas: not on a shared cluster.
        for delete in (admission_api.delete_validating_webhook_configuration,
                       admission_api.delete_mutating_webhook_configuration):
            try:
                delete(admission.CONFIGURATION_NAME)
            except ApiException as err:
                if err.status != 404:
                    raise
        for delete, name in ((core.delete_namespaced_secret, SECRET), (core.delete_namespaced_pod, first_pod),
                             (core.delete_namespaced_pod, second_pod)):
            try:
                delete(name, NAMESPACE)
            except ApiException as err:
                if err.status != 404:
                    raise
    for name in ("first", "second"):
        text = (tmp_path / name / "log").read_text()
        assert "anonymous" not in text and "Forbidden" not in text and " 403" not in text, text[-3000:]
