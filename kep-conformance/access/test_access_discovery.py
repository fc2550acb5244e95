"""NetworkSelfDiscovery: KEP-3698 requirement 17.

"Implementation-agnostic PodNetwork Interface information (e.g. PodNetwork
name, IP address) for each attachment will be exposed to runtime Pod (via
e.g. environment variables, downward API)". The probe pod mounts its own
per-network status through a downward API volume and reads it from inside;
what it reads must name its network, interface and addresses as the API does.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from suite import status as status_mod
from suite.binding import Binding
from suite.kube import ready_nodes, wait_for
from suite.networks import Networks
from suite.pods import NetRequest
from suite.probes import ProbePods
from suite.transport import TransportError

pytestmark = pytest.mark.feature("NetworkSelfDiscovery")

MOUNT = "/etc/podinfo"


def _mount_status(key: str) -> Any:
    def customize(body: dict[str, Any]) -> None:
        body["spec"]["volumes"] = [{"name": "podinfo", "downwardAPI": {"items": [
            {"path": "networks", "fieldRef": {"fieldPath": f"metadata.annotations['{key}']"}}]}}]
        body["spec"]["containers"][0]["volumeMounts"] = [{"name": "podinfo", "mountPath": MOUNT}]
    return customize


def test_pod_reads_its_networks_through_the_downward_api(
    networks: Networks, probes: ProbePods, core: client.CoreV1Api, binding: Binding, namespace: str,
) -> None:
    nodes = ready_nodes(core)
    if not nodes:
        pytest.skip("needs a Ready schedulable node to run the probe pod")
    key = str(binding.status_annotation)
    net = networks.create()["metadata"]["name"]
    networks.ready(net)
    pod = probes.create(namespace, "self", nodes[0], [NetRequest(net, interface="net1")],
                        customize=_mount_status(key))
    probes.ready([pod])
    from_api = status_mod.on(probes.attachments(pod), net)

    def from_inside() -> status_mod.Attached | None:
        try:
            text = probes.transport.shell(namespace, pod.name, f"cat {MOUNT}/networks")
        except TransportError:
            return None  # the kubelet refreshes downward API files on its own period
        entries = status_mod.from_annotation(text, key) if text.strip() else []
        mine = [e for e in entries if e.network == net]
        return mine[0] if mine else None

    inside = wait_for(from_inside, networks.timeout * 2, f"{MOUNT}/networks inside the pod to list {net}")
    assert (inside.interface, inside.addresses()) == (from_api.interface, from_api.addresses()), \
        f"inside the pod: {inside}; in the API: {from_api}"
    assert inside.interface == "net1"
