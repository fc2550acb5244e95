"""The CNI benchmark's end-to-end figure: pod create to networks ready.

multinet allocates a pod's addresses in its controller, before the pod is
scheduled; Whereabouts allocates them inside ADD. ADD alone leaves
multinet's allocation out, so here each pod is timed from just before its
create call to the return of its ADD, through what the real flow does in
between:

- multinet: create (its webhooks gate the pod), the controller allocates and
  lifts the gate (seen on a watch), bind to the node, ADD;
- peer: create, bind, ADD (Multus reads the pod, Whereabouts allocates
  through the apiserver, Multus writes the pod's network-status).

The bind stands in for the scheduler: the same call for both. The controller
runs (`multinet controller`, a child process) for this phase only, so the
ADD/DEL rounds are not measured beside it; while it runs, the peer's pods
pass multinet's fail-open webhook too, so each create call is also timed
on its own. Beside ADD's return, multinet's status is timed: create to the
readiness condition the agent writes after ADD.
"""

from __future__ import annotations

import json
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client

from bench_common import ControllerProcess, PodWatch, ms, spread, summary
from cni_systems import Peer, PeerInstall, System
from kube import Kube
from kube.kinds import IP_ALLOCATIONS, POD_NETWORKS
from podnetwork import names
from tests.support import cni as testing
from tests.support.wait import wait_for

SCHEDULER = "bench-bound-by-nobody"  # no scheduler has this name: the bench binds the pods


def bind(core: client.CoreV1Api, namespace: str, name: str, node: str) -> None:
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
               "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
    # Raw response: the client's Binding model fails to read the empty reply.
    core.create_namespaced_pod_binding(name, namespace, binding, _preload_content=False)  # type: ignore[arg-type, call-arg]  # kubernetes-stubs: a body may be a plain dict, and _preload_content is a real keyword of every call


class Milestones:
    """When each pod (by name) first showed its allocations with the gate
    lifted, and its networks' readiness condition True; fed by a PodWatch."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lifted: dict[str, threading.Event] = {}
        self.ready_at: dict[str, float] = {}

    def expect(self, name: str) -> threading.Event:
        with self.lock:
            return self.lifted.setdefault(name, threading.Event())

    def seen(self, pod: client.V1Pod) -> None:
        assert pod.metadata is not None and pod.spec is not None
        now, name = time.perf_counter(), str(pod.metadata.name)
        gated = any(g.name == names.SCHEDULING_GATE for g in pod.spec.scheduling_gates or [])
        if not gated and names.ALLOCATIONS_ANNOTATION in (pod.metadata.annotations or {}):
            self.expect(name).set()
        conditions = (pod.status.conditions if pod.status is not None else None) or []
        if any(c.type == names.READINESS_CONDITION and c.status == "True" for c in conditions):
            with self.lock:
                self.ready_at.setdefault(name, now)


class MultinetE2E(System):
    name = "multinet_e2e"

    def __init__(self, node: testing.Node, networks: Sequence[str], secondaries: int, core: client.CoreV1Api,
                 milestones: Milestones) -> None:
        self.node, self.secondaries, self.core, self.milestones = node, secondaries, core, milestones
        self.annotation = json.dumps([{"podNetworkName": networks[n], "interfaceName": f"net{n + 1}"}
                                      for n in range(secondaries)])
        self.spaces: list[str] = []
        self.names: list[str] = []
        self.uids: list[str] = []
        self.containers: list[str] = []
        self.started: dict[str, float] = {}
        self.phases: dict[str, list[float]] = {"create": [], "allocate": [], "bind_and_add": []}

    def prepare(self, tag: str, count: int) -> None:
        self.spaces = [self.node.netns.new("e") for _ in range(count)]
        self.names = [f"me-{tag}-{i}" for i in range(count)]
        self.uids = [""] * count
        self.containers = [f"e{secrets.token_hex(6)}" for _ in range(count)]

    def add(self, i: int) -> float:
        name, namespace = self.names[i], self.node.namespace
        lifted = self.milestones.expect(name)
        body = {"metadata": {"name": name, "annotations": {names.NETWORKS_ANNOTATION: self.annotation}},
                "spec": {"schedulerName": SCHEDULER, "tolerations": [{"operator": "Exists"}],
                         "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}
        start = time.perf_counter()
        pod = self.core.create_namespaced_pod(namespace, body)  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        created = time.perf_counter()
        if not lifted.wait(60):
            raise RuntimeError(f"multinet_e2e: the controller did not lift {namespace}/{name}'s gate in 60 s")
        allocated = time.perf_counter()
        assert pod.metadata is not None
        self.uids[i] = str(pod.metadata.uid)
        bind(self.core, namespace, name, self.node.name)
        self._call("ADD", i)
        end = time.perf_counter()
        self.started[name] = start
        for phase, seconds in (("create", created - start), ("allocate", allocated - created),
                               ("bind_and_add", end - allocated)):
            self.phases[phase].append(seconds)
        return end - start

    def _call(self, command: str, i: int) -> None:
        result = self.node.cni(command, self.spaces[i], (self.node.namespace, self.names[i], self.uids[i]),
                               self.containers[i])
        if result.exit != 0:
            raise RuntimeError(f"multinet-cni {command} failed: {result.out}")

    def status_ready(self) -> list[float]:
        """Create to the readiness condition True, for each pod of the round (waiting for the last)."""
        wait_for("the readiness condition of every multinet_e2e pod",
                 lambda: all(n in self.milestones.ready_at for n in self.names), timeout=60)
        return [self.milestones.ready_at[n] - self.started[n] for n in self.names]

    def finish(self) -> None:
        for name in self.names:
            self.core.delete_namespaced_pod(name, self.node.namespace, grace_period_seconds=0)
        for space in self.spaces:
            testing.run("ip", "netns", "del", space)
            self.node.netns.made.remove(space)
        self.spaces.clear()


class PeerE2E(Peer):
    name = "peer_e2e"

    def __init__(self, api: client.ApiClient, objects: testing.ClusterObjects, namespace: str, work: Path,
                 prefix: str, secondaries: int, kubeconfig: Path, install: PeerInstall,
                 netns: testing.Namespaces, node: str) -> None:
        super().__init__(api, objects, namespace, work, prefix, secondaries, kubeconfig, install, netns)
        self.node, self.tag = node, ""
        self.creates: list[float] = []

    def prepare(self, tag: str, count: int) -> None:
        self.spaces = [self.netns.new("q") for _ in range(count)]
        self.tag, self.pods = tag, [("", "", "")] * count
        self.containers = [f"q{secrets.token_hex(6)}" for _ in range(count)]

    def add(self, i: int) -> float:
        start = time.perf_counter()
        self.pods[i] = self._pod(f"pe-{self.tag}-{i}", ",".join(self.nads))
        self.creates.append(time.perf_counter() - start)
        bind(self.core, self.namespace, self.pods[i][1], self.node)
        self._call("ADD", i)
        return time.perf_counter() - start


def released(kube: Kube, networks: Sequence[str]) -> bool:
    """No address held on `networks` and no in-use finalizer on them: what
    the controller must have done before it stops."""
    if any(a["spec"]["podNetworkName"] in networks for a in kube.list(IP_ALLOCATIONS)):
        return False
    return not any(names.FINALIZER in (kube.get(POD_NETWORKS, n)["metadata"].get("finalizers") or [])
                   for n in networks)


def bench_e2e(run_round: Callable[[Sequence[System], str, int], dict[str, dict[str, list[float]]]],
              kubeconfig: Path, tree: Path, work: Path, node: testing.Node, networks: Sequence[str],
              install: PeerInstall, prefix: str, secondaries: int, rounds: int, pods: int,
              log: Callable[[str], None]) -> dict[str, Any]:
    """Rounds of both end-to-end series, interleaved pod by pod as the ADD/DEL
    rounds are; the report's ratios compare figures of the same round."""
    work.mkdir()
    kube = node.objects.kube
    api, core = kube.api, node.objects.core
    controller = ControllerProcess(kube, str(kubeconfig), work / f"controller-{secondaries}.log", cwd=tree)
    milestones = Milestones()
    watch = PodWatch(core, node.namespace, milestones.seen)
    multinet = MultinetE2E(node, networks, secondaries, core, milestones)
    peer = PeerE2E(api, node.objects, node.namespace, work, prefix, secondaries, kubeconfig, install, node.netns,
                   node.objects.node())
    controller.start()
    watch.start()
    per_round, status = [], []
    try:
        for r in range(rounds):
            log(f"end to end, {secondaries} secondary network(s), round {r + 1}/{rounds}: {pods} pods each")
            per_round.append(run_round([multinet, peer], f"e{secondaries}r{r}", pods))
            status.append(multinet.status_ready())
        wait_for("the controller's release of every end-to-end pod's addresses",
                 lambda: released(kube, networks[:secondaries]), timeout=120)
    finally:
        watch.stop()
        controller.stop()
        peer.close()
    ours = [summary(r["multinet_e2e"]["add"]) for r in per_round]
    theirs = [summary(r["peer_e2e"]["add"]) for r in per_round]
    return {
        "what": "pod create to the return of its ADD: multinet with its controller's allocation before "
                "scheduling, the peer with Whereabouts' allocation inside ADD; the bind is the scheduler's",
        "multinet_e2e": {"p50_ms": spread([o["p50_ms"] for o in ours]), "p99_ms": spread([o["p99_ms"] for o in ours]),
                         "pooled": summary([x for r in per_round for x in r["multinet_e2e"]["add"]]),
                         "phases": {k: {**summary(v), "max_ms": ms(max(v))} for k, v in multinet.phases.items()},
                         "create_to_status_ready": summary([x for s in status for x in s])},
        "peer_e2e": {"p50_ms": spread([t["p50_ms"] for t in theirs]), "p99_ms": spread([t["p99_ms"] for t in theirs]),
                     "pooled": summary([x for r in per_round for x in r["peer_e2e"]["add"]]),
                     "create_p50_ms": ms(statistics.median(peer.creates))},
        "ratios": {f"e2e_{q}_vs_peer": spread([o[f"{q}_ms"] / t[f"{q}_ms"] for o, t in zip(ours, theirs)])
                   for q in ("p50", "p99")},
    }
