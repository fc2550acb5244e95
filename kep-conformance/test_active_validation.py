"""PodNetworksActiveValidation: a pod waits until its networks exist and are Ready."""

from __future__ import annotations

import pytest
from kubernetes import client

from conftest import Networks, unique, wait_for
from features import GROUP, VERSION
from pods import pod

pytestmark = pytest.mark.feature("PodNetworksActiveValidation")


def gated(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    p = core.read_namespaced_pod(name, namespace)
    return bool(p.spec.scheduling_gates) and not p.spec.node_name


def test_pod_waits_for_a_missing_network(networks: Networks, core: client.CoreV1Api, namespace: str) -> None:
    net = unique("kep-later")
    name = unique("kep-wait")
    core.create_namespaced_pod(namespace, pod(name, [{"podNetworkName": net}]))
    assert gated(core, namespace, name), "a pod referencing a missing network must not be scheduled"

    def event_names_network() -> bool:
        events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        return any(net in (e.message or "") for e in events)

    wait_for(event_names_network, networks.timeout, "an Event naming the missing network")
    networks.create(net)
    networks.ready(net)
    wait_for(lambda: not core.read_namespaced_pod(name, namespace).spec.scheduling_gates,
             networks.timeout, "the scheduling gate to be removed")


def test_waiting_pod_reports_why_in_pod_scheduled(networks: Networks, core: client.CoreV1Api, namespace: str) -> None:
    """KEP "Scheduler changes": PodScheduled is False with a message naming the network."""
    net = unique("kep-later")
    name = unique("kep-wait")
    core.create_namespaced_pod(namespace, pod(name, [{"podNetworkName": net}]))

    def reported() -> bool:
        conditions = core.read_namespaced_pod(name, namespace).status.conditions or []
        return any(c.type == "PodScheduled" and c.status == "False" and net in (c.message or "")
                   for c in conditions)

    wait_for(reported, networks.timeout, "PodScheduled=False naming the missing network")


def test_pod_waits_while_the_network_is_disabled(
    networks: Networks, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str,
) -> None:
    net = networks.create(enabled=False)["metadata"]["name"]
    name = unique("kep-wait")
    core.create_namespaced_pod(namespace, pod(name, [{"podNetworkName": net}]))
    assert gated(core, namespace, name)
    custom.patch_cluster_custom_object(GROUP, VERSION, "podnetworks", net, {"spec": {"enabled": True}})
    wait_for(lambda: not core.read_namespaced_pod(name, namespace).spec.scheduling_gates,
             networks.timeout, "the scheduling gate to be removed once enabled")


def test_default_only_pod_is_not_gated(core: client.CoreV1Api, namespace: str) -> None:
    name = unique("kep-plain")
    created = core.create_namespaced_pod(namespace, pod(name, None))
    assert not created.spec.scheduling_gates
