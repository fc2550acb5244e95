"""PodNetworkAccessControl and AccessThroughAttachment: KEP-3698 requirement 16.

A user may attach a pod to a PodNetwork only with the `use` verb on it
(podnetworks/<name>); through a PodNetworkAttachment the check still applies.
Each test carries its positive control: the same pod is admitted once the
grant exists, so a cluster that refuses everything cannot pass.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from suite.access import admitted_eventually, grant_pods, granted_use, user_client
from suite.binding import Binding
from suite.fixtures import PodMaker
from suite.kube import Clients, refusal, unique
from suite.networks import ATTACHMENTS, NETWORKS, Networks
from suite.pods import NetRequest

pytestmark = pytest.mark.feature("PodNetworkAccessControl")


def _refused(create: Callable[[], object], names: list[str]) -> None:
    with pytest.raises(ApiException) as denied:
        create()
    # The KEP names no status code for this denial; any refusal naming the object counts.
    assert denied.value.status in (400, 403, 422), denied.value.body
    message = str(refusal(denied.value).get("message", ""))
    assert any(n in message for n in names), f"the refusal should name one of {names}: {message}"


def test_use_verb_is_required(
    clients: Clients, new_api: Callable[[], client.ApiClient], binding: Binding, networks: Networks,
    pods: PodMaker, namespace: str,
) -> None:
    net = networks.create()["metadata"]["name"]
    networks.ready(net)
    user = unique("kep-user")
    grant_pods(clients.rbac, namespace, user)
    them = user_client(new_api, user)
    name = unique("p")

    def create() -> object:
        return pods.create(namespace, name, [NetRequest(net)], dry_run=True, core=them)

    _refused(create, [net])
    with granted_use(clients.rbac, user, binding.group, NETWORKS, [net]):
        admitted_eventually(create, networks.timeout, "the pod to be admitted once `use` is granted")


@pytest.mark.feature("AccessThroughAttachment", "PodNetworkAttachment")
def test_use_is_checked_through_an_attachment(
    clients: Clients, new_api: Callable[[], client.ApiClient], binding: Binding, networks: Networks,
    pods: PodMaker, namespace: str,
) -> None:
    """Naming an attachment is no way around the check; `use` on it and its network admits the pod."""
    net = networks.create()["metadata"]["name"]
    networks.ready(net)
    pna = networks.attach(namespace, net)
    user = unique("kep-user")
    grant_pods(clients.rbac, namespace, user)
    them = user_client(new_api, user)
    name = unique("p")

    def create() -> object:
        return pods.create(namespace, name, [NetRequest(attachment=pna)], dry_run=True, core=them)

    _refused(create, [pna, net])
    with granted_use(clients.rbac, user, binding.group, NETWORKS, [net]), \
            granted_use(clients.rbac, user, binding.group, ATTACHMENTS, [pna], namespace=namespace):
        admitted_eventually(create, networks.timeout, "the pod to be admitted once `use` is granted")
