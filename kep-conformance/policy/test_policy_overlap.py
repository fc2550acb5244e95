"""NetworkPolicyOverlappingNetworks: a policy on one of two networks with
overlapping subnets holds against the same connection on the other.

Networks O1 and O2 get the same subnet (the options file's overlapping pair);
each has a client and a server, made in the same order so the twins hold the
same addresses. O2 denies all ingress to its server; O1 has no policy. While
O1's client holds a connection open to O1's server, O2's client opens the same
connection (address, source port, server address and port: suite/twins.py) to
O2's server. It must be refused as any connection on O2 is: an implementation
that tracks both networks' connections in one table lets it pass as part of
O1's. O1's connection must still be answered afterwards (its positive control).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from suite import twins
from suite.binding import Binding
from suite.kube import body, holds, wait_for
from suite.options import RunOptions
from suite.pods import HTTP_PORT, NetRequest
from suite.topology import Topology, topology
from suite.truth import Seen

pytestmark = pytest.mark.feature("NetworkPolicyOverlappingNetworks")

SERVER = {"kep-role": "server"}


@pytest.fixture(scope="module")
def mirrored(api: client.ApiClient, new_api: Callable[[], client.ApiClient], binding: Binding,
             run_options: RunOptions, params_namespace: Callable[[], str],
             two_nodes: list[str]) -> Iterator[Topology]:
    if not binding.policy_annotation:
        pytest.skip("the options file binds no NetworkPolicy to a network (policy.annotation)")
    with topology(api, new_api, binding, run_options, params_namespace, two_nodes) as t:
        ns = t.namespace("kep-pol-ovl")
        for index, key in enumerate(("O1", "O2")):
            t.network(key, "overlapping", index)
        for key in ("O1", "O2"):  # clients on the first node, servers on the second
            t.pod(f"{key.lower()}-client", ns, 0, [NetRequest(t.nets[key], interface="ovl")])
            t.pod(f"{key.lower()}-server", ns, 1, [NetRequest(t.nets[key], interface="ovl")], labels=SERVER)
        t.ready()
        yield t


def test_a_policy_holds_against_the_same_connection_on_an_overlapping_network(
    mirrored: Topology, binding: Binding, api: client.ApiClient, run_options: RunOptions,
) -> None:
    t = mirrored
    found = twins.pair(t, "O1", "O2")
    if isinstance(found, str):
        pytest.skip(found)
    p = found
    c1, c2 = (t.pods[label] for label in p.clients)
    s1, s2 = (t.pods[label] for label in p.servers)
    # Positive control: with no policy yet, O2's client reaches O2's server.
    wait_for(lambda: t.probes.dial(c2, p.server, HTTP_PORT).seen is Seen.CONNECTED, run_options.converge_timeout,
             f"{c2.ref} to reach {s2.ref} at {p.server} on O2 before any policy")
    networking = client.NetworkingV1Api(api)
    networking.create_namespaced_network_policy(s2.namespace, body({
        "metadata": {"name": "o2-deny-servers", "annotations": {str(binding.policy_annotation): t.nets["O2"]}},
        "spec": {"podSelector": {"matchLabels": SERVER}, "policyTypes": ["Ingress"]}}))
    try:
        wait_for(lambda: t.probes.dial(c2, p.server, HTTP_PORT).seen is Seen.BLOCKED, run_options.converge_timeout,
                 f"O2's deny-all ingress policy to block {c2.ref} from {s2.ref}")
        holds(lambda: t.probes.dial(c1, p.server, HTTP_PORT).seen is Seen.CONNECTED, 3,
              f"{c1.ref} reaching {s1.ref} on O1, which has no policy")
        outcome = twins.run(t, p)
        where = (f"{p.client}:{outcome.port} -> {p.server}:{HTTP_PORT} from {c1.ref} on O1 and {c2.ref} on O2 "
                 f"(servers {s1.ref} and {s2.ref})")
        assert s1.hostname in outcome.held, (
            f"O1's open connection {where} was not answered by {s1.ref}: {outcome.held[-300:]!r}")
        if not twins.saw_port(p, outcome, outcome.held):
            pytest.skip(f"the probe image's {twins.NC} did not bind source port {outcome.port}: the two "
                        "connections were not the same, nothing to test")
        assert s2.hostname not in outcome.twin, (
            f"O2's policy was passed by the twin of O1's open connection {where}: {s2.ref} answered "
            f"{outcome.twin[-200:]!r}")
    finally:
        networking.delete_namespaced_network_policy("o2-deny-servers", s2.namespace)
