"""PodNetworkInUse: KEP-3698 "InUse state".

A PodNetwork referenced by a pod cannot be deleted (a finalizer holds it)
until its last user goes; pods in Succeeded or Failed state do not count.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from suite.kube import absent, pod_phase, unique, wait_for
from suite.networks import Networks
from suite.pods import NetRequest
from suite.fixtures import PodMaker

pytestmark = pytest.mark.feature("PodNetworkInUse")

# A hostname no node has: the pod is never bound, so no kubelet owns its status.
NOWHERE = {"kubernetes.io/hostname": "kep-conformance-no-such-node"}


def _held(networks: Networks, name: str) -> None:
    held = networks.get(name)
    assert held["metadata"].get("deletionTimestamp"), "deletion should be pending while a pod uses it"
    assert held["metadata"].get("finalizers"), "a finalizer should hold the network while in use"


def test_network_in_use_by_a_pod_is_deleted_after_the_pod(
    networks: Networks, pods: PodMaker, core: client.CoreV1Api, namespace: str,
) -> None:
    name = networks.create()["metadata"]["name"]
    networks.ready(name)
    user = unique("kep-user")
    pods.create(namespace, user, [NetRequest(name, interface="net1")])
    wait_for(lambda: networks.get(name)["metadata"].get("finalizers"), networks.timeout, "the in-use finalizer")
    networks.delete(name)
    _held(networks, name)
    core.delete_namespaced_pod(user, namespace, grace_period_seconds=0)
    wait_for(lambda: absent(lambda: networks.get(name)), networks.timeout, f"PodNetwork {name} to go")


def test_network_deleted_right_after_a_pod_references_it_is_held(
    networks: Networks, pods: PodMaker, core: client.CoreV1Api, namespace: str,
) -> None:
    """InUse holds from the moment the pod exists, not once a controller has caught up."""
    name = networks.create()["metadata"]["name"]
    networks.ready(name)
    user = unique("kep-user")
    pods.create(namespace, user, [NetRequest(name)])
    networks.delete(name)
    _held(networks, name)
    core.delete_namespaced_pod(user, namespace, grace_period_seconds=0)
    wait_for(lambda: absent(lambda: networks.get(name)), networks.timeout, f"PodNetwork {name} to go")


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_terminated_pod_does_not_hold_its_network(
    networks: Networks, pods: PodMaker, core: client.CoreV1Api, namespace: str, phase: str,
) -> None:
    """KEP: "the controller will filter out Pods that are in Succeeded or Failed state".

    The phase is written through the status subresource as a kubelet writes
    it; the pod is never bound, so nothing else writes its status.
    """
    name = networks.create()["metadata"]["name"]
    networks.ready(name)
    user = unique("kep-done")
    pods.create(namespace, user, [NetRequest(name)], nodeSelector=NOWHERE)
    wait_for(lambda: networks.get(name)["metadata"].get("finalizers"), networks.timeout, "the in-use finalizer")
    core.patch_namespaced_pod_status(user, namespace, {"status": {"phase": phase}})
    networks.delete(name)
    wait_for(lambda: absent(lambda: networks.get(name)), networks.timeout,
             f"PodNetwork {name} to go while its only user is {phase}")
    assert pod_phase(core, namespace, user) == phase
