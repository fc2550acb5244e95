"""The in-use index: who keeps a network or attachment from being deleted."""

from __future__ import annotations

import json
from typing import Any

from controller.index import Index, pod_record
from podnetwork import names


def pod(name: str, networks: list[dict[str, Any]] | None, phase: str = "Pending", gated: bool = False) -> dict[str, Any]:
    ann = {names.NETWORKS_ANNOTATION: json.dumps(networks)} if networks is not None else {}
    spec: dict[str, Any] = {"schedulingGates": [{"name": names.SCHEDULING_GATE}]} if gated else {}
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "annotations": ann},
            "spec": spec, "status": {"phase": phase}}


def test_record() -> None:
    r = pod_record(pod("a", [{"podNetworkName": "blue"}], gated=True))
    assert r.gated and not r.terminal and r.networks[0].pod_network_name == "blue"
    assert pod_record(pod("b", None)).networks[0].pod_network_name == "default"
    assert pod_record(pod("c", [{"podNetworkName": "x"}, {"podNetworkName": "x"}])).networks == ()


def test_in_use_ignores_terminal_pods_and_counts_attachments() -> None:
    idx = Index()
    idx.set_pod(pod_record(pod("a", [{"podNetworkName": "blue"}])))
    idx.set_pod(pod_record(pod("b", [{"podNetworkName": "blue"}], phase="Succeeded")))
    assert idx.network_in_use("blue") == ["pod ns/a"]
    idx.set_attachment(("ns", "att"), "blue")
    assert idx.network_in_use("blue") == ["PodNetworkAttachment ns/att", "pod ns/a"]
    idx.remove_pod(("ns", "a"))
    idx.set_attachment(("ns", "att"), None)
    assert idx.network_in_use("blue") == []


def test_attachment_users_and_pods_through_attachment() -> None:
    idx = Index()
    idx.set_attachment(("ns", "att"), "blue")
    idx.set_pod(pod_record(pod("a", [{"podNetworkAttachmentName": "att"}], gated=True)))
    assert idx.attachment_in_use(("ns", "att")) == ["pod ns/a"]
    assert [p.name for p in idx.pods_of_network("blue")] == ["a"]
    assert [p.name for p in idx.gated_pods()] == ["a"]


def test_admitted_pod_keeps_its_networks_in_use_until_seen_or_expired() -> None:
    index = Index()
    index.admit(("ns", "p"), [("network", "blue"), ("attachment", ("ns", "fast"))], until=100.0)
    assert index.network_in_use("blue", now=10.0) == ["pod ns/p (admitted)"]
    assert index.attachment_in_use(("ns", "fast"), now=10.0) == ["pod ns/p (admitted)"]
    assert index.network_in_use("blue", now=100.0) == []  # expired: the pod never showed up
    index.admit(("ns", "p"), [("network", "blue")], until=100.0)
    index.set_pod(pod_record({"metadata": {"namespace": "ns", "name": "p", "uid": "u", "annotations": {
        "multinetwork.networking.x-k8s.io/networks": '[{"podNetworkName": "blue"}]'}}, "spec": {}}))
    assert index.network_in_use("blue", now=10.0) == ["pod ns/p"]  # the watch's record takes over
