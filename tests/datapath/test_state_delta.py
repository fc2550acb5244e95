"""`P4RuntimeDatapath.replace_state` of incrementally compiled states, against a real target.

A `CompiledState` relative to the state the datapath holds is diffed over its
changed keys alone; one relative to anything else, a port change, and a write
that failed send it back to a whole diff; the sync loop holds a refused one
back as it does a list. Whichever path runs, the target then
holds exactly the ports' entries and the from-scratch compile of the same
objects, and no more updates were written than that difference needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent.compile import NodeCompiler, compile_node, network_ids
from datapath.client.backoff import Backoff
from datapath.client.datapath import P4RuntimeDatapath
from datapath.client.full import TableFull
from datapath.client.p4rt import P4RuntimeClient, WriteError, diff
from datapath.client.sync import SyncLoop
from datapath.entries import Entry
from datapath.pipeline import pipeline
from datapath.state import CompiledState, Key
from podnetwork.names import ENDPOINTSLICE_NETWORK_LABEL, POD_NETWORK_ANNOTATION, SERVICE_VIP_ANNOTATION
from tests.datapath.conftest import Env, netns
from tests.datapath.test_forwarding import _pod_dict
from tests.datapath.test_sync_faults import NEVER, held, running
from tests.support.metrics import scrape, value
from tests.support.wait import wait_for

Obj = dict[str, Any]


def service(i: int, backends: list[str]) -> tuple[Obj, Obj]:
    name = f"s{i}"
    svc = {"metadata": {"name": name, "namespace": "default", "annotations": {
        POD_NETWORK_ANNOTATION: "blue", SERVICE_VIP_ANNOTATION: f"10.96.0.{i + 1}"}},
        "spec": {"ports": [{"port": 80, "protocol": "TCP"}]}}
    eps = {"metadata": {"name": f"{name}-blue", "namespace": "default", "labels": {
        "kubernetes.io/service-name": name, ENDPOINTSLICE_NETWORK_LABEL: "blue"}},
        "ports": [{"port": 8080, "protocol": "TCP"}], "endpoints": [{"addresses": [a]} for a in backends]}
    return svc, eps


class Counting:
    """Counts the datapath's whole-state builds: a delta round makes none."""

    def __init__(self, dp: P4RuntimeDatapath) -> None:
        self.calls, self._desired = 0, dp.desired
        dp.desired = self  # type: ignore[method-assign]

    def __call__(self) -> dict[Key, Entry]:
        self.calls += 1
        return self._desired()


@netns
def test_deltas_full_diffs_and_failures_keep_the_target_exact(env: Env) -> None:
    env.sizes = {"service": 6}
    env.node("n1")
    dp = env.datapaths["n1"] = P4RuntimeDatapath(P4RuntimeClient(env.targets["n1"].address,
                                                                 pipeline=pipeline(env.sizes)))
    dp.reconnect()
    local = env.pod("n1", "a", 100, "10.1.0.5/24")
    pods = [_pod_dict("a", "n1", "blue", 100, local.ip), _pod_dict("r", "n2", "blue", 100, "10.1.0.6")]
    nodes = [{"metadata": {"name": "n2"}, "status": {"addresses": [{"type": "InternalIP", "address": "192.168.9.2"}]}}]
    services = [service(i, [f"10.1.0.{20 + i}", "10.1.0.6"]) for i in range(4)]
    compiler = NodeCompiler("n1")
    builds = Counting(dp)

    def step(hand_over: Callable[[Any], int] = dp.replace_state) -> int:
        listings: dict[str, list[Obj]] = {"pods": pods, "nodes": nodes, "namespaces": [], "policies": [],
                                          "services": [s for s, _ in services], "slices": [e for _, e in services]}
        held: dict[Key, Entry] = {e.key: e for e in dp.client.read()}
        want = dict(dp._ports_map())
        want.update({e.key: e for e in compile_node("n1", networks=network_ids(pods), **listings)})
        written = hand_over(compiler.compile(**listings))
        assert {e.key: e for e in dp.client.read()} == want == dp.desired()
        assert written == len(diff(held, want))
        return written

    assert step() == 5  # the first state: a whole diff (4 Services and the remote pod's route)
    builds.calls = 0
    services[2] = service(2, ["10.1.0.99"])  # one endpoint change
    assert step() == 1 and builds.calls == 1  # only the check's own call: the round itself diffed one key
    services.append(service(9, ["10.1.0.30"]))
    pods.append(_pod_dict("r2", "n2", "blue", 100, "10.1.0.7"))
    assert step() == 2 and builds.calls == 2

    compiler.compile(pods=pods, nodes=nodes, namespaces=[], policies=[], services=[], slices=[])  # never handed over
    services.pop()
    builds.calls = 0
    assert step() == 1 and builds.calls == 2  # relative to a state the datapath never held: a whole diff

    builds.calls = 0
    dp.attach(env.testbed.add_pod(env.testbed.nodes["n1"], "b", 100, "10.1.0.8/24").attachment)
    assert builds.calls == 0  # a port's own keys
    assert step() == 0 and builds.calls == 1  # and the target held exactly what it should

    services.extend(service(i, ["10.1.0.40"]) for i in range(10, 13))  # 7 Services: one over the table's 6
    with pytest.raises(WriteError):
        dp.replace_state(compiler.compile(pods=pods, nodes=nodes, namespaces=[], policies=[],
                                          services=[s for s, _ in services], slices=[e for _, e in services]))
    del services[-2:]
    builds.calls = 0
    step()  # after a failed write: a whole diff, and the target exact again
    assert builds.calls == 2


@netns
def test_the_sync_loop_holds_a_refused_compiled_state_back_until_it_changes(env: Env) -> None:
    """As the loop does for lists (test_sync_faults): a wake with nothing compiled
    anew writes nothing; the first change is tried at once and lands whole."""
    env.sizes = {"service": 6}
    env.node("n1")
    target = env.targets["n1"]
    dp = env.datapaths["n1"] = P4RuntimeDatapath(P4RuntimeClient(target.address, pipeline=pipeline(env.sizes)))
    pods = [_pod_dict("a", "n1", "blue", 100, "10.1.0.5")]
    services = [service(i, [f"10.1.0.{20 + i}"]) for i in range(8)]  # two more than the table holds
    compiler = NodeCompiler("n1")
    compiled: list[CompiledState] = []

    def desired() -> CompiledState:
        compiled.append(compiler.compile(pods=pods, nodes=[], namespaces=[], policies=[],
                                         services=[s for s, _ in services], slices=[e for _, e in services]))
        return compiled[-1]

    def refused() -> float:
        return value(scrape(target.metrics_url or ""), "multinet_ipu_p4runtime_write_errors_total",
                     code="RESOURCE_EXHAUSTED")

    reports: list[TableFull] = []
    loop = SyncLoop(dp, desired, min_interval=0.05, resync_interval=NEVER, on_full=reports.append,
                    refused_retry=Backoff(NEVER, NEVER))
    with running(loop):
        wait_for("a report of the full table", lambda: reports)
        assert reports[0].tables == ("service",) and len(reports[0].refused) == 2
        assert refused() == 2
        for wakes in (1, 2, 3):  # informer events that changed nothing: no write, no report
            loop.mark_dirty()
            wait_for("the loop to hold the refused state back", lambda: loop.held >= wakes)
        assert not compiled[-1].changed and refused() == 2 and len(reports) == 1
        del services[5:]
        loop.mark_dirty()
        small = P4RuntimeClient(target.address, pipeline=pipeline(env.sizes))
        wait_for("the changed state on the target", lambda: held(target.address, small) == dp.desired())
        wait_for("the loop to see the table take everything", lambda: loop.full is None)
    want = {e.key: e for e in compile_node("n1", networks=network_ids(pods), pods=pods, nodes=[], namespaces=[],
                                           policies=[], services=[s for s, _ in services],
                                           slices=[e for _, e in services])}
    assert {k: e for k, e in dp.desired().items() if e.table == "service"} == want
