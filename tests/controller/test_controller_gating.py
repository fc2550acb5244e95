"""Active validation: the gate stays while a network is missing, disabled or not ready, and
goes with addresses once every network is Ready."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from tests.controller.controller_support import make_attachment, Networks, allocations_of, condition, events_of, pod_gated
from tests.controller.controller_support import suffix
from tests.support.wait import wait_for

from tests.controller.controller_support import Kube
from podnetwork import names
from podnetwork.allocations import parse_allocations

pytestmark = pytest.mark.cluster


def test_gate_waits_for_missing_network_then_lifts(kube: Kube, namespace: str, networks: Networks,
                                                   make_pod: Any) -> None:
    net = f"mna-net-{suffix()}"
    make_pod("p", [{"podNetworkName": net, "isDefaultGW4": True}])
    wait_for("an Event naming the missing network",
             lambda: any(f"PodNetwork '{net}' does not exist" in e for e in events_of(kube, namespace, "p")))
    assert pod_gated(kube, namespace, "p")
    pod = kube.get_pod(namespace, "p")
    assert pod is not None and not pod["spec"].get("nodeName")
    # KEP "Scheduler changes": PodScheduled is False with the Event's message.
    scheduled = wait_for("PodScheduled naming the missing network", lambda: next(
        (c for c in (kube.get_pod(namespace, "p") or {}).get("status", {}).get("conditions") or []
         if c["type"] == "PodScheduled" and net in (c.get("message") or "")), None))
    assert scheduled["status"] == "False"

    params = networks.params({"topology": "L2", "ipv4": {"subnet": "10.70.0.0/24", "gateway": "10.70.0.1"},
                              "ipv6": {"subnet": "fd00:70::/64"}})
    networks.network(params, name=net)
    wait_for("gate lifted", lambda: not pod_gated(kube, namespace, "p"))
    allocs = allocations_of(kube, namespace, "p")
    assert allocs is not None and len(allocs) == 1
    entry = parse_allocations(json.dumps(allocs))[0]
    assert entry.pod_network_name == net and entry.interface_name == "net1" and entry.is_default_gw4
    v4, v6 = (ipaddress.ip_interface(ip) for ip in entry.ips)
    assert v4.network == ipaddress.ip_network("10.70.0.0/24") and str(v4.ip) not in ("10.70.0.0", "10.70.0.1")
    assert v6.network == ipaddress.ip_network("fd00:70::/64")
    params_obj = kube.get_cluster(names.PARAMS_GROUP, names.PARAMS_PLURAL, params)
    assert params_obj is not None and entry.network_id == params_obj["status"]["networkId"]
    # The real scheduler binds it once the gate is gone.
    wait_for("pod bound", lambda: (kube.get_pod(namespace, "p") or {}).get("spec", {}).get("nodeName"))


def test_disabled_network_keeps_new_pods_gated(kube: Kube, namespace: str, networks: Networks,
                                               make_pod: Any) -> None:
    net = networks.ready_network("10.71.0.0/24")
    make_pod("before", [{"podNetworkName": net}])
    wait_for("first pod ungated", lambda: not pod_gated(kube, namespace, "before"))
    kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, net, {"spec": {"enabled": False}})
    wait_for("network disabled", lambda: condition(kube, net, "Ready") == "False")
    make_pod("after", [{"podNetworkName": net}])
    wait_for("an Event saying why", lambda: any("AdministrativelyDisabled" in e
                                                for e in events_of(kube, namespace, "after")))
    assert pod_gated(kube, namespace, "after")
    assert allocations_of(kube, namespace, "before") is not None  # running pods untouched
    kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, net, {"spec": {"enabled": True}})
    wait_for("gate lifted after re-enable", lambda: not pod_gated(kube, namespace, "after"))


def test_not_ready_params_keep_gate(kube: Kube, namespace: str, networks: Networks, make_pod: Any) -> None:
    params = f"mna-params-{suffix()}"
    net = networks.network(params)
    make_pod("p", [{"podNetworkName": net}])
    wait_for("an Event saying ParamsNotReady",
             lambda: any("ParamsNotReady" in e for e in events_of(kube, namespace, "p")))
    assert pod_gated(kube, namespace, "p")
    networks.params({"topology": "L2", "ipv4": {"subnet": "10.72.0.0/24"}}, name=params)
    wait_for("gate lifted", lambda: not pod_gated(kube, namespace, "p"))


def test_attachment_reference(kube: Kube, namespace: str, networks: Networks, make_pod: Any) -> None:
    net = networks.ready_network("10.73.0.0/24")
    make_pod("p", [{"podNetworkAttachmentName": "fast", "interfaceName": "fast0"}, {"podNetworkName": "default"}])
    wait_for("an Event naming the missing attachment",
             lambda: any(f"PodNetworkAttachment {namespace}/fast does not exist" in e
                         for e in events_of(kube, namespace, "p")))
    make_attachment(kube, namespace, "fast", net)
    wait_for("gate lifted", lambda: not pod_gated(kube, namespace, "p"))
    allocs = allocations_of(kube, namespace, "p")
    assert allocs is not None
    assert [(a["podNetworkName"], a.get("podNetworkAttachmentName"), a["interfaceName"]) for a in allocs] == [
        (net, "fast", "fast0")]


def test_an_attachment_with_parameters_of_its_own_allocates_from_them(
        kube: Kube, namespace: str, networks: Networks, make_pod: Any) -> None:
    """The attachment's parametersRefs win over its PodNetwork's, as the agent plans the interface."""
    net = networks.ready_network("10.76.0.0/24")
    own = networks.params({"topology": "L2", "ipv4": {"subnet": "10.78.0.0/24"}})
    make_attachment(kube, namespace, "own", net, params=own)
    wait_for("attachment Ready", lambda: condition(kube, "own", "Ready", names.POD_NETWORK_ATTACHMENT_PLURAL,
                                                   namespace) == "True")
    make_pod("p", [{"podNetworkAttachmentName": "own", "interfaceName": "own0"}, {"podNetworkName": "default"}])
    wait_for("gate lifted", lambda: not pod_gated(kube, namespace, "p"))
    allocs = allocations_of(kube, namespace, "p")
    assert allocs is not None and len(allocs) == 1, allocs
    assert allocs[0]["podNetworkName"] == net and allocs[0]["ips"][0].startswith("10.78.0."), allocs


def test_exhausted_network_keeps_gate(kube: Kube, namespace: str, networks: Networks, make_pod: Any) -> None:
    net = networks.ready_network("10.74.0.0/30", gateway="10.74.0.1")  # one assignable address
    make_pod("first", [{"podNetworkName": net}])
    wait_for("first ungated", lambda: not pod_gated(kube, namespace, "first"))
    make_pod("second", [{"podNetworkName": net}])
    wait_for("an Event saying the pool is exhausted",
             lambda: any("no free IPv4 address left" in e for e in events_of(kube, namespace, "second")))
    assert pod_gated(kube, namespace, "second")
    # The first pod terminates (as a kubelet would report it): its address returns.
    kube.core.patch_namespaced_pod_status("first", namespace, {"status": {"phase": "Succeeded"}})
    wait_for("second ungated once the address returns", lambda: not pod_gated(kube, namespace, "second"),
             timeout=90)
    allocs = allocations_of(kube, namespace, "second")
    assert allocs is not None and allocs[0]["ips"] == ["10.74.0.2/30"]


def test_attachment_resolving_to_a_referenced_network_keeps_gate(kube: Kube, namespace: str, networks: Networks,
                                                                 make_pod: Any) -> None:
    """KEP active validation: through attachments, a pod still references each PodNetwork once."""
    net = networks.ready_network("10.75.0.0/24")
    make_attachment(kube, namespace, "again", net)
    make_pod("p", [{"podNetworkName": net}, {"podNetworkAttachmentName": "again"}])
    wait_for("an Event naming the duplicate", lambda: any(
        f"PodNetwork '{net}' is already referenced by entry 0" in e for e in events_of(kube, namespace, "p")))
    assert pod_gated(kube, namespace, "p")


def test_disabled_default_network_keeps_multi_network_pods_gated(kube: Kube, namespace: str,
                                                                  networks: Networks, make_pod: Any) -> None:
    """KEP active validation covers every referenced network, `default` included."""
    net = networks.ready_network("10.79.0.0/24")
    kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, names.DEFAULT_NETWORK, {"spec": {"enabled": False}})
    try:
        wait_for("default disabled", lambda: condition(kube, names.DEFAULT_NETWORK, "Ready") == "False")
        make_pod("p", [{"podNetworkName": names.DEFAULT_NETWORK}, {"podNetworkName": net}])
        wait_for("an Event naming the default network",
                 lambda: any(f"PodNetwork '{names.DEFAULT_NETWORK}' is not Ready" in e
                             for e in events_of(kube, namespace, "p")))
        assert pod_gated(kube, namespace, "p")
    finally:
        kube.patch_cluster(names.GROUP, names.POD_NETWORK_PLURAL, names.DEFAULT_NETWORK, {"spec": {"enabled": True}})
    wait_for("gate lifted once default is enabled again", lambda: not pod_gated(kube, namespace, "p"))
