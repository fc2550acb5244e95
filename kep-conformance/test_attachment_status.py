"""PodNetworkAttachmentStatus: a running pod reports each attachment.

Needs nodes that run pods (kubelet and a runtime, or the implementation's own).
"""

from __future__ import annotations

import ipaddress
import json

import pytest
from kubernetes import client

from conftest import Networks, unique, wait_for
from features import NETWORK_STATUS_ANNOTATION
from pods import pod

pytestmark = pytest.mark.feature("PodNetworkAttachmentStatus")


def test_running_pod_reports_interfaces_and_addresses(
    networks: Networks, implementation: dict, core: client.CoreV1Api, namespace: str,
) -> None:
    net = networks.create()["metadata"]["name"]
    networks.ready(net)
    name = unique("kep-run")
    core.create_namespaced_pod(namespace, pod(name, [{"podNetworkName": net, "interfaceName": "fronthaul"}]))

    def status() -> list | None:
        p = core.read_namespaced_pod(name, namespace)
        text = (p.metadata.annotations or {}).get(NETWORK_STATUS_ANNOTATION)
        return json.loads(text) if text and p.status.phase == "Running" else None

    entries = wait_for(status, networks.timeout * 2, f"{name} running with {NETWORK_STATUS_ANNOTATION}")
    ours = [e for e in entries if e.get("podNetworkName") == net]
    assert len(ours) == 1, entries
    assert ours[0]["interfaceName"] == "fronthaul"
    subnet = ipaddress.ip_network(implementation["parameters"][0]["spec"]["ipv4"]["subnet"])
    assert any(ipaddress.ip_interface(ip).ip in subnet for ip in ours[0]["ips"]), ours[0]
