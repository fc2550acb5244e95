"""PodNetworkAttachment: KEP-3698 "PodNetworkAttachment".

Namespaced, immutable, Ready following its PodNetwork (PodNetworkNotReady),
held while a pod uses it, and itself holding its PodNetwork ("InUse state":
"referenced by at least one Pod or PodNetworkAttachment").
"""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from suite.binding import Binding
from suite.fixtures import PodMaker
from suite.kube import Clients, Obj, absent, condition, unique, wait_for
from suite.networks import ATTACHMENTS, Networks
from suite.pods import NetRequest

pytestmark = pytest.mark.feature("PodNetworkAttachment")


def test_attachment_is_served_namespaced_with_status(clients: Clients, binding: Binding) -> None:
    definition: Obj = clients.extensions.read_custom_resource_definition(f"{ATTACHMENTS}.{binding.group}")
    assert definition.spec.names.kind == "PodNetworkAttachment"
    assert definition.spec.scope == "Namespaced"
    served = {v.name: v for v in definition.spec.versions if v.served}
    assert binding.version in served
    assert served[binding.version].subresources and served[binding.version].subresources.status is not None


def test_attachment_spec_is_immutable(networks: Networks, namespace: str) -> None:
    first = networks.create()["metadata"]["name"]
    second = networks.create(index=1)["metadata"]["name"]
    name = networks.attach(namespace, first)
    with pytest.raises(ApiException) as refused:
        networks.custom.patch_namespaced_custom_object(networks.group, networks.version, namespace, ATTACHMENTS,
                                                       name, {"spec": {"podNetworkName": second}})
    assert refused.value.status == 422


def _attachment_ready(networks: Networks, namespace: str, name: str, status: str, reason: str | None) -> None:
    def check() -> bool:
        c = condition(networks.attachment(namespace, name), "Ready")
        return bool(c and c["status"] == status and (reason is None or c.get("reason") == reason))
    wait_for(check, networks.timeout, f"attachment {name} Ready={status} {reason or ''}")


def test_attachment_ready_follows_its_network(networks: Networks, namespace: str) -> None:
    net = unique("kep-later")
    name = networks.attach(namespace, net)
    _attachment_ready(networks, namespace, name, "False", "PodNetworkNotReady")
    networks.create(net)
    _attachment_ready(networks, namespace, name, "True", None)
    networks.patch(net, {"enabled": False})
    _attachment_ready(networks, namespace, name, "False", "PodNetworkNotReady")


def test_network_held_only_by_an_attachment(networks: Networks, namespace: str) -> None:
    net = networks.create()["metadata"]["name"]
    networks.ready(net)
    name = networks.attach(namespace, net)
    wait_for(lambda: networks.get(net)["metadata"].get("finalizers"), networks.timeout,
             "the in-use finalizer for an attachment's network")
    networks.delete(net)
    held = networks.get(net)
    assert held["metadata"].get("deletionTimestamp") and held["metadata"].get("finalizers"), \
        "a PodNetwork referenced by an attachment must be held"
    networks.delete_attachment(namespace, name)
    wait_for(lambda: absent(lambda: networks.get(net)), networks.timeout, f"PodNetwork {net} to go")


def test_attachment_in_use_by_a_pod_is_deleted_after_the_pod(
    networks: Networks, pods: PodMaker, core: client.CoreV1Api, namespace: str,
) -> None:
    net = networks.create()["metadata"]["name"]
    networks.ready(net)
    pna = networks.attach(namespace, net)
    user = unique("kep-user")
    pods.create(namespace, user, [NetRequest(attachment=pna)])
    wait_for(lambda: networks.attachment(namespace, pna)["metadata"].get("finalizers"), networks.timeout,
             "the in-use finalizer")
    networks.delete_attachment(namespace, pna)
    assert networks.attachment(namespace, pna)["metadata"].get("deletionTimestamp")
    core.delete_namespaced_pod(user, namespace, grace_period_seconds=0)
    wait_for(lambda: absent(lambda: networks.attachment(namespace, pna)), networks.timeout,
             f"PodNetworkAttachment {pna} to go")
