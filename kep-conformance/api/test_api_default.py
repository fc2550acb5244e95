"""DefaultPodNetwork: KEP-3698 "Default PodNetwork".

`default` always exists and is Ready, every pod may use it without a grant,
and deleting it ends in a fresh `default` ("Availability"). The deletions
change cluster-wide state, so they run only with --allow-disruptive.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from suite.access import grant_pods, user_client
from suite.fixtures import PodMaker
from suite.kube import Clients, condition, unique, wait_for
from suite.networks import Networks
from suite.pods import NetRequest

pytestmark = pytest.mark.feature("DefaultPodNetwork")


def test_default_network_exists_and_is_ready(networks: Networks) -> None:
    ready = networks.ready("default")
    c = condition(ready, "Ready")
    assert c is not None and c.get("lastTransitionTime")


def test_default_network_needs_no_use_grant(
    clients: Clients, new_api: Callable[[], client.ApiClient], pods: PodMaker, networks: Networks, namespace: str,
) -> None:
    """A user who may only create pods can attach them to `default`, named or implied."""
    networks.ready("default")
    user = unique("kep-user")
    grant_pods(clients.rbac, namespace, user)
    them = user_client(new_api, user)

    def create(networks_list: list[NetRequest] | None) -> None:
        pods.create(namespace, unique("p"), networks_list, dry_run=True, core=them)

    for listed in ([NetRequest("default")], None):
        wait_for(lambda: _admitted(lambda: create(listed)), networks.timeout,
                 f"a pod on `default` ({'named' if listed else 'implied'}) created by {user}")


def _admitted(create: Callable[[], None]) -> bool:
    try:
        create()
    except ApiException as err:
        # 403 from RBAC while the Role binding propagates; any other refusal is the answer.
        if err.status == 403 and "cannot create resource" in str(err.body):
            return False
        raise
    return True


def _recreated(networks: Networks, before: str) -> bool:
    try:
        obj = networks.get("default")
    except ApiException as err:
        if err.status == 404:  # gone, not yet recreated
            return False
        raise
    return bool(obj["metadata"]["uid"] != before and not obj["metadata"].get("deletionTimestamp"))


@pytest.mark.disruptive
def test_default_network_is_recreated_after_deletion(networks: Networks) -> None:
    before = networks.get("default")["metadata"]["uid"]
    networks.delete("default")
    wait_for(lambda: _recreated(networks, before), networks.timeout, "the default PodNetwork to be recreated")
    networks.ready("default")


@pytest.mark.disruptive
def test_default_network_in_use_is_recreated_after_deletion(
    networks: Networks, pods: PodMaker, namespace: str,
) -> None:
    """Even while pods use it, deleting `default` ends in a fresh, Ready `default`."""
    pods.create(namespace, unique("kep-user"), None)
    before = networks.get("default")["metadata"]["uid"]
    networks.delete("default")
    wait_for(lambda: _recreated(networks, before), networks.timeout,
             "the default PodNetwork to be recreated while a pod uses it")
    networks.ready("default")
