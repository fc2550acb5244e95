"""An address-less (layer 2) network on real nodes: a PodNetwork without
parameters and one whose NetworkParams have neither ipv4 nor ipv6. Pods on
two nodes get the interface up with its MTU and MAC and no address, and reach
each other by IPv6 link-local addresses, which need nothing of an IPAM, over
the network's VXLAN segment; a Service on it is refused with an Event."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest

from podnetwork import names
from tests.support.nodes import Cluster, netexec_pod
from tests.support.wait import wait_for

NAMESPACE = "l2-test"
STATUS = "jsonpath={.metadata.annotations.multinetwork\\.networking\\.x-k8s\\.io/network-status}"


@pytest.fixture(scope="module")
def pods(real_nodes: Cluster) -> Iterator[Cluster]:
    c = real_nodes
    deadline = time.monotonic() + 90
    while c.run_kubectl("get", "podnetworks", "default").returncode != 0:
        assert time.monotonic() < deadline, "the controller never installed the PodNetwork API"
        time.sleep(1)
    c.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.POD_NETWORK_KIND,
         "metadata": {"name": "fronthaul"}, "spec": {"enabled": True, "provider": names.PROVIDER}},
        {"apiVersion": f"{names.PARAMS_GROUP}/{names.PARAMS_VERSION}", "kind": names.PARAMS_KIND,
         "metadata": {"name": "jumbo-l2"}, "spec": {"topology": "L2", "mtu": 8000}},
        {"apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.POD_NETWORK_KIND,
         "metadata": {"name": "jumbo"}, "spec": {"enabled": True, "provider": names.PROVIDER, "parametersRefs": [
             {"group": names.PARAMS_GROUP, "kind": names.PARAMS_KIND, "name": "jumbo-l2"}]}},
    )
    networks = json.dumps([{"podNetworkName": "default"}, {"podNetworkName": "fronthaul", "interfaceName": "fh0"},
                           {"podNetworkName": "jumbo", "interfaceName": "j0"}])
    c.apply(*(netexec_pod(name, node, NAMESPACE, networks) for name, node in (("du1", "node1"), ("du2", "node2"))))
    for name in ("du1", "du2"):
        c.kubectl("wait", "-n", NAMESPACE, "--for=condition=Ready", f"pod/{name}", "--timeout=180s")
    yield c


def link(c: Cluster, pod: str, ifname: str) -> dict[str, object]:
    """`ip -j addr show` of one interface inside the pod."""
    (found,) = json.loads(c.kubectl("exec", "-n", NAMESPACE, pod, "--", "ip", "-j", "addr", "show", "dev", ifname))
    return dict(found)


def link_local(c: Cluster, pod: str, ifname: str) -> str | None:
    """The interface's IPv6 link-local address, once duplicate address detection is done."""
    for a in link(c, pod, ifname).get("addr_info") or []:  # type: ignore[attr-defined]  # a JSON list
        if a.get("scope") == "link" and a.get("family") == "inet6" and not a.get("tentative"):
            return str(a["local"])
    return None


def test_pods_attach_with_mtu_and_mac_and_no_address(pods: Cluster) -> None:
    for pod in ("du1", "du2"):
        status = {s["interfaceName"]: s for s in json.loads(pods.kubectl("get", "pod", "-n", NAMESPACE, pod,
                                                                         "-o", STATUS))}
        for ifname, network, mtu in (("fh0", "fronthaul", 1450), ("j0", "jumbo", 8000)):
            assert (status[ifname]["podNetworkName"], status[ifname]["ips"]) == (network, [])
            shown = link(pods, pod, ifname)
            assert shown["mtu"] == mtu and "UP" in shown["flags"], shown  # type: ignore[operator]
            assert shown["address"] == status[ifname]["mac"], (shown, status[ifname])
            families = {a["family"] + "/" + a["scope"] for a in shown["addr_info"]}  # type: ignore[attr-defined]
            assert families <= {"inet6/link"}, shown  # nothing but the kernel's own link-local


@pytest.mark.parametrize("ifname", ["fh0", "j0"])
def test_pods_on_two_nodes_reach_each_other_at_layer_2(pods: Cluster, ifname: str) -> None:
    address = {pod: wait_for(f"{pod}'s link-local address on {ifname}",
                             lambda p=pod: link_local(pods, p, ifname), timeout=30)  # type: ignore[misc]
               for pod in ("du1", "du2")}
    for client, server in (("du1", "du2"), ("du2", "du1")):
        # agnhost's own client, from the container: TCP to the other node's pod by its link-local address.
        out = pods.run_kubectl("exec", "-n", NAMESPACE, client, "--", "/agnhost", "connect",
                               f"[{address[server]}%{ifname}]:8080", "--timeout=5s")
        assert out.returncode == 0, (client, server, out.stderr)
    # The segments are apart: j0's address is not reached through fh0.
    out = pods.run_kubectl("exec", "-n", NAMESPACE, "du1", "--", "/agnhost", "connect",
                           f"[{address['du2']}%{'fh0' if ifname == 'j0' else 'j0'}]:8080", "--timeout=3s")
    assert out.returncode != 0, out.stdout


def test_a_service_on_it_is_refused_with_an_event(pods: Cluster) -> None:
    pods.apply({"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "fh", "namespace": NAMESPACE, "annotations": {names.POD_NETWORK_ANNOTATION: "fronthaul"}},
        "spec": {"selector": {"app": "du1"}, "ports": [{"port": 8080}]}})

    def refused() -> list[str]:
        events = pods.json("get", "events", "-n", NAMESPACE, "--field-selector", "involvedObject.name=fh")
        return [e["message"] for e in events["items"] if e["reason"] == "AddressLessNetwork"]

    (message, *_) = wait_for("the AddressLessNetwork Event", refused)
    assert re.search(r"PodNetwork 'fronthaul' has no addresses", message), message
