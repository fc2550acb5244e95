"""PodNetworksActiveValidation: KEP-3698 "Active validations" and "Scheduler changes".

A pod referencing a PodNetwork or PodNetworkAttachment that is missing or not
Ready stays Pending and unscheduled, with PodScheduled=False and an Event
naming it, and is scheduled once the object is Ready. "Unscheduled" is read
repeatedly over a window, not once: a pod bound a second later was not held.
How the implementation holds the pod (a scheduling gate, a scheduler plugin)
is its own choice; with Ready nodes the suite needs it bound once released,
without nodes it reads the gate the options file declares.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from suite.binding import Binding
from suite.fixtures import PodMaker
from suite.kube import Obj, holds, ready_nodes, unique, wait_for
from suite.networks import Networks
from suite.pods import NetRequest

pytestmark = pytest.mark.feature("PodNetworksActiveValidation")

HOLD_SECONDS = 8.0  # how long a held pod is watched staying unbound


class Held:
    def __init__(self, core: client.CoreV1Api, binding: Binding, namespace: str, name: str, timeout: float) -> None:
        self.core, self.binding, self.namespace, self.name, self.timeout = core, binding, namespace, name, timeout
        self.nodes = bool(ready_nodes(core))
        if not self.nodes and not binding.scheduling_gate:
            pytest.skip("no Ready node to schedule onto, and the options file declares no "
                        "pods.activeValidation.schedulingGate to tell a released pod by")

    def pod(self) -> Obj:
        return self.core.read_namespaced_pod(self.name, self.namespace)

    def unbound(self) -> bool:
        return not self.pod().spec.node_name

    def released(self) -> bool:
        p = self.pod()
        if p.spec.node_name:
            return True
        if self.nodes:
            return False
        return self.binding.scheduling_gate not in [g.name for g in p.spec.scheduling_gates or []]

    def stays_held(self, why: str) -> None:
        holds(self.unbound, HOLD_SECONDS, f"{self.name} unscheduled while {why}")
        assert not self.released(), f"{self.name} was released while {why}"

    def event_names(self, text: str) -> None:
        def named() -> bool:
            events = self.core.list_namespaced_event(self.namespace,
                                                     field_selector=f"involvedObject.name={self.name}").items
            return any(text in (e.message or "") for e in events)
        wait_for(named, self.timeout, f"an Event on {self.name} naming {text}")

    def wait_released(self, why: str) -> None:
        wait_for(self.released, self.timeout, f"{self.name} to be scheduled once {why}")


def _pod(pods: PodMaker, core: client.CoreV1Api, binding: Binding, namespace: str, networks: list[NetRequest],
         timeout: float) -> Held:
    name = unique("kep-wait")
    pods.create(namespace, name, networks)
    return Held(core, binding, namespace, name, timeout)


def test_pod_waits_for_a_missing_network(
    networks: Networks, pods: PodMaker, core: client.CoreV1Api, binding: Binding, namespace: str,
) -> None:
    net = unique("kep-later")
    held = _pod(pods, core, binding, namespace, [NetRequest(net)], networks.timeout)
    held.stays_held(f"PodNetwork {net} does not exist")
    held.event_names(net)
    networks.create(net)
    networks.ready(net)
    held.wait_released(f"PodNetwork {net} is Ready")


def test_waiting_pod_reports_why_in_pod_scheduled(
    networks: Networks, pods: PodMaker, core: client.CoreV1Api, binding: Binding, namespace: str,
) -> None:
    """KEP "Scheduler changes": PodScheduled is False with a message naming the network."""
    net = unique("kep-later")
    held = _pod(pods, core, binding, namespace, [NetRequest(net)], networks.timeout)

    def reported() -> bool:
        return any(c.type == "PodScheduled" and c.status == "False" and net in (c.message or "")
                   for c in held.pod().status.conditions or [])

    wait_for(reported, networks.timeout, "PodScheduled=False naming the missing network")


def test_pod_waits_while_the_network_is_disabled(
    networks: Networks, pods: PodMaker, core: client.CoreV1Api, binding: Binding, namespace: str,
) -> None:
    net = networks.create(enabled=False)["metadata"]["name"]
    held = _pod(pods, core, binding, namespace, [NetRequest(net)], networks.timeout)
    held.stays_held(f"PodNetwork {net} is disabled")
    networks.patch(net, {"enabled": True})
    held.wait_released(f"PodNetwork {net} is enabled")


@pytest.mark.feature("PodNetworksActiveValidation", "PodNetworkAttachment")
def test_pod_waits_for_a_missing_attachment(
    networks: Networks, pods: PodMaker, core: client.CoreV1Api, binding: Binding, namespace: str,
) -> None:
    net = networks.create()["metadata"]["name"]
    networks.ready(net)
    pna = unique("kep-pna")
    held = _pod(pods, core, binding, namespace, [NetRequest(attachment=pna)], networks.timeout)
    held.stays_held(f"PodNetworkAttachment {pna} does not exist")
    held.event_names(pna)
    networks.attach(namespace, net, pna)
    held.wait_released(f"PodNetworkAttachment {pna} is Ready")


@pytest.mark.feature("PodNetworksActiveValidation", "PodNetworkAttachment")
def test_pod_waits_for_an_attachment_that_is_not_ready(
    networks: Networks, pods: PodMaker, core: client.CoreV1Api, binding: Binding, namespace: str,
) -> None:
    net = networks.create(enabled=False)["metadata"]["name"]
    pna = networks.attach(namespace, net)
    held = _pod(pods, core, binding, namespace, [NetRequest(attachment=pna)], networks.timeout)
    held.stays_held(f"PodNetworkAttachment {pna} is not Ready (its PodNetwork is disabled)")
    networks.patch(net, {"enabled": True})
    held.wait_released(f"PodNetworkAttachment {pna} is Ready")


def test_default_only_pod_is_not_held(pods: PodMaker, namespace: str) -> None:
    created = pods.create(namespace, unique("kep-plain"), None)
    assert not created.spec.scheduling_gates
