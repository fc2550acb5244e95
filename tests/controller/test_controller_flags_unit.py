"""The in-cluster pieces of `multinet controller` without an apiserver: the flags'
refusals, kopf's credentials from a loaded client configuration, and the webhook
configurations rewritten to go through a Service."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kubernetes import client

from controller import admission
from controller.cli import object_name
from controller.kopf_wiring import connection_info, through_service


@pytest.mark.parametrize("value", ["multinet-webhook", "/name", "ns/", "a/b/c"])
def test_object_name_refuses_naming_the_flag(value: str) -> None:
    with pytest.raises(SystemExit, match=r"^--cert-secret: expected NAMESPACE/NAME"):
        object_name("--cert-secret", value)


def test_object_name_splits() -> None:
    assert object_name("--webhook-service", "multinet-system/multinet-webhook") == (
        "multinet-system", "multinet-webhook")
    assert object_name("--webhook-service", None) is None


def test_the_command_refuses_a_bad_service_before_connecting() -> None:
    proc = subprocess.run([sys.executable, "-m", "multinet.cli", "controller", "--kubeconfig", "/nonexistent",
                           "--webhook-service", "nope"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--webhook-service: expected NAMESPACE/NAME, got 'nope'" in proc.stderr


def _configuration(key: str, value: str, prefix: str | None = None) -> client.Configuration:
    cfg = client.Configuration()
    cfg.host = "https://10.0.0.1:6443"
    cfg.api_key = {key: value}
    if prefix:
        cfg.api_key_prefix = {key: prefix}  # type: ignore[assignment]  # the stubs say str; the client keeps a dict
    return cfg


@pytest.mark.parametrize(("key", "value", "prefix"), [
    ("BearerToken", "Bearer tok-1", None),  # a kubeconfig's token, as the client loads it
    ("BearerToken", "tok-1", "Bearer"),  # the scheme kept as a prefix
    ("BearerToken", "tok-1", None),  # a bare token
    ("authorization", "Bearer tok-1", None),  # older clients
])
def test_connection_info_hands_kopf_the_token(key: str, value: str, prefix: str | None) -> None:
    info = connection_info(_configuration(key, value, prefix))
    assert (info.scheme, info.token, info.server) == ("Bearer", "tok-1", "https://10.0.0.1:6443")


def test_connection_info_without_a_token() -> None:
    cfg = client.Configuration()
    cfg.host = "https://10.0.0.1:6443"
    info = connection_info(cfg)
    assert info.token is None and info.scheme is None


def test_through_service_keeps_paths_and_ca() -> None:
    mutating, validating = admission.webhook_configurations("https://127.0.0.1:8443", "Q0E=")
    for original in (mutating, validating):
        moved = through_service(original, ("multinet-system", "multinet-webhook"))
        assert len(moved["webhooks"]) == len(original["webhooks"])
        for before, after in zip(original["webhooks"], moved["webhooks"]):
            path = before["clientConfig"]["url"].removeprefix("https://127.0.0.1:8443")
            assert after["clientConfig"] == {"caBundle": "Q0E=", "service": {
                "namespace": "multinet-system", "name": "multinet-webhook", "path": path, "port": 443}}
            assert {k: v for k, v in after.items() if k != "clientConfig"} == {
                k: v for k, v in before.items() if k != "clientConfig"}


def test_in_a_pod_without_kubeconfig_it_takes_the_service_account() -> None:
    """No --kubeconfig in a pod: the in-cluster config (here without the token it needs),
    not ~/.kube/config."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "KUBERNETES_SERVICE_HOST": "10.96.0.1",
           "KUBERNETES_SERVICE_PORT": "443"}
    proc = subprocess.run([sys.executable, "-m", "multinet.cli", "controller"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert "Service token file does not exist" in proc.stderr, proc.stderr[-2000:]
