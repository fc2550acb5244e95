"""MULTINETWORK-SERVICES (provisional): KEP-3698 requirement 21 and
"Endpointslice controller changes".

Backends s0, s1, s2 on network S over two nodes; client c0 on S, client t0 on another network T. A Service bound to S must get
per-network EndpointSlices with exactly the ready backends' S addresses, its
address on S must spread over the backends and follow them as they come, go
and turn unready, and must not answer from network T.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from suite.binding import Binding
from suite.connectivity import TableLog, Target, reach
from suite.kube import Obj, body, unique, wait_for
from suite.options import RunOptions
from suite.pods import HTTP_PORT, NetRequest
from suite.probes import ProbePod
from suite.services import (CLUSTER_MANAGED_BY, SERVICE_PORT, address, network_slices, service_body, slices,
                            spread)
from suite.topology import Topology, topology
from suite.verdicts import Rules

pytestmark = pytest.mark.feature("ServiceEndpointSlices")

UNREADY_FLAG = "/tmp/unready"
Row = tuple[str, str | None, str | None, int | None]  # an endpoint: address, pod, node, port


def toggled_readiness(body: dict[str, Any]) -> None:
    """Ready unless /tmp/unready exists, so a test can turn a running backend unready."""
    body["spec"]["containers"][0]["readinessProbe"] = {
        "exec": {"command": ["/bin/sh", "-c", f"test ! -e {UNREADY_FLAG}"]}, "periodSeconds": 1,
        "failureThreshold": 1}


@dataclass
class Env:
    t: Topology
    ns: str
    core: client.CoreV1Api
    discovery: client.DiscoveryV1Api
    binding: Binding
    timeout: float

    def backend(self, label: str, node: int, app: str) -> ProbePod:
        pod = self.t.pod(label, self.ns, node, [NetRequest(self.t.nets["S"], interface="svc0")], labels={"app": app})
        return pod

    def service(self, selector: str, target_port: int | str = HTTP_PORT) -> tuple[str, str]:
        name = unique("kep-svc")
        self.core.create_namespaced_service(self.ns, body(service_body(self.binding, name, self.t.nets["S"],
                                                                       {"app": selector}, target_port)))
        return name, address(self.core, self.binding, self.ns, name, self.timeout)

    def ready_set(self, service: str) -> set[Row]:
        found = network_slices(self.binding, slices(self.discovery, self.ns, service))
        return {(e.address, e.pod, e.node, e.port) for e in found if e.ready}

    def expected(self, labels: list[str]) -> set[Row]:
        """(address on S, pod, node, port) of each backend; the node as the pod is bound (spec.nodeName)."""
        out: set[Row] = set()
        for lb in labels:
            pod: Obj = self.core.read_namespaced_pod(self.t.pods[lb].name, self.ns)
            out.add((str(self.t.addr(lb, self.t.nets["S"])), pod.metadata.name, pod.spec.node_name, HTTP_PORT))
        return out


@pytest.fixture(scope="module")
def env(api: client.ApiClient, new_api: Callable[[], client.ApiClient], binding: Binding, run_options: RunOptions,
        params_namespace: Callable[[], str], two_nodes: list[str]) -> Iterator[Env]:
    with topology(api, new_api, binding, run_options, params_namespace, two_nodes) as t:
        t.network("S", index=0)
        t.network("T", index=1)
        e = Env(t, t.namespace("kep-svc"), client.CoreV1Api(api), client.DiscoveryV1Api(api), binding,
                run_options.converge_timeout)
        for i in range(3):
            e.backend(f"s{i}", i, "kep-backend")
        t.pod("c0", e.ns, 1, [NetRequest(t.nets["S"], interface="svc0")])
        t.pod("t0", e.ns, 0, [NetRequest(t.nets["T"], interface="oth0")])
        t.ready()
        yield e


def test_network_slices_hold_exactly_the_ready_backends(env: Env) -> None:
    name, _ = env.service("kep-backend")
    want = env.expected(["s0", "s1", "s2"])
    wait_for(lambda: env.ready_set(name) == want, env.timeout,
             f"per-network EndpointSlices of {name} to hold {sorted(want)} (address, pod, node, port)")


def test_cluster_slices_hold_only_default_network_addresses(env: Env) -> None:
    name, _ = env.service("kep-backend")
    secondary = {a for a, *_ in env.expected(["s0", "s1", "s2"])}
    backends: list[Obj] = [env.core.read_namespaced_pod(env.t.pods[lb].name, env.ns) for lb in ("s0", "s1", "s2")]
    default_ips = {ip.ip for p in backends for ip in p.status.pod_ips or []}

    def cluster_addresses() -> set[str] | None:
        found = {e.address for e in slices(env.discovery, env.ns, name).get(CLUSTER_MANAGED_BY, [])}
        return found if found else None

    found = wait_for(cluster_addresses, env.timeout, f"the cluster's own EndpointSlices of {name}")
    assert not found & secondary, f"the cluster's slices hold secondary addresses {sorted(found & secondary)}"
    assert found <= default_ips, f"the cluster's slices hold {sorted(found - default_ips)}, not pod IPs"


@pytest.mark.feature("ServiceLoadBalancing")
def test_address_spreads_over_every_backend_on_both_nodes(env: Env) -> None:
    _, vip = env.service("kep-backend")
    backends = {env.t.pods[f"s{i}"].hostname for i in range(3)}

    def each_answers() -> bool:
        answers = spread(env.t.probes, env.t.pods["c0"], vip)
        return set(answers) == backends and all(answers[b] for b in backends)

    wait_for(each_answers, env.timeout, f"{vip}:{SERVICE_PORT} answered by each of {sorted(backends)} "
                                        "and nothing else")


@pytest.mark.feature("ServiceLoadBalancing")
def test_backends_leave_when_deleted_or_unready_and_join_when_ready(env: Env) -> None:
    def join(label: str, node: int) -> ProbePod:
        pod = env.t.pod(label, env.ns, node, [NetRequest(env.t.nets["S"], interface="svc0")],
                        labels={"app": "kep-churn"}, customize=toggled_readiness)
        env.t.probes.ready([pod])
        return pod

    join("j0", 0)
    join("j1", 1)
    name, vip = env.service("kep-churn")
    c0 = env.t.pods["c0"]

    def answered_by(*labels: str) -> bool:
        return set(spread(env.t.probes, c0, vip, 12)) == {env.t.pods[lb].hostname for lb in labels}

    wait_for(lambda: answered_by("j0", "j1"), env.timeout, "both backends answering")
    env.t.probes.transport.shell(env.ns, "j1", f"touch {UNREADY_FLAG}")
    wait_for(lambda: env.ready_set(name) == env.expected(["j0"]), env.timeout, "j1 to leave the ready endpoints")
    wait_for(lambda: answered_by("j0"), env.timeout, "j1 to stop answering once unready")
    env.t.probes.delete(env.t.pods.pop("j0"))
    join("j2", 0)
    wait_for(lambda: env.ready_set(name) == env.expected(["j2"]), env.timeout, "j0 gone and j2 in the slices")
    wait_for(lambda: answered_by("j2"), env.timeout, "only the new backend j2 answering")


@pytest.mark.feature("ServiceNetworkIsolation")
def test_address_is_not_reachable_from_another_network(env: Env, rules: Rules, tables: TableLog) -> None:
    _, vip = env.service("kep-backend")
    table = reach(env.t.probes, f"Service address {vip} on network S from S (c0) and from T (t0)",
                  {"c0": env.t.pods["c0"], "t0": env.t.pods["t0"]}, {"vip": Target(vip, SERVICE_PORT)},
                  {("c0", "vip"): True, ("t0", "vip"): False}, rules)
    tables.check("test_address_is_not_reachable_from_another_network", table)


@pytest.mark.feature("ServiceNamedTargetPort")
def test_named_target_port_resolves_per_backend(env: Env) -> None:
    name, vip = env.service("kep-backend", target_port="http")
    want = env.expected(["s0", "s1", "s2"])
    wait_for(lambda: env.ready_set(name) == want, env.timeout, f"{name}'s slices with the resolved port")
    backends = {env.t.pods[f"s{i}"].hostname for i in range(3)}
    wait_for(lambda: set(spread(env.t.probes, env.t.pods["c0"], vip)) == backends, env.timeout,
             f"{vip}:{SERVICE_PORT} (targetPort http) answered by each backend")
