"""Measure the controller: creation -> gate lifted with addresses, for N pods x M networks.

Starts `multinet controller` as a child process, creates two PodNetworks with
NetworkParams, creates the pods concurrently and watches them; each pod's
latency runs from just before its create call to the watch event that shows
the allocations annotation and no scheduling gate. The controller's RSS is
sampled from /proc while it works. At the end every pod's addresses are read
back: an address held twice on a network is a conflict, and fails the run.
First, as the floor, the same pods are created with no controller and no
webhook: the rate the apiserver takes them at alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench_common import ControllerProcess, PodWatch, network_ready, percentile, rss_mib
from kubernetes import client

from controller import admission
from controller.install import remove_webhooks
from kube.kinds import IP_ALLOCATIONS, NETWORK_PARAMS, POD_NETWORKS
from kube import Kube, NotFound
from podnetwork import names
from podnetwork.allocations import parse_allocations

HERE = Path(__file__).resolve().parent


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self, kubeconfig: str, pods: int, workers: int, networks: int = 2) -> None:
        self.kubeconfig = kubeconfig
        self.kube = Kube.from_kubeconfig(kubeconfig, pool_size=64)
        self.core = client.CoreV1Api(self.kube.api)
        self.pods = pods
        self.workers = workers
        self.network_count = networks
        self.tag = uuid.uuid4().hex[:6]
        self.namespace = f"mna-bench-{self.tag}"
        self.networks: list[str] = []
        self.params: list[str] = []
        self.created: dict[str, float] = {}
        self.lifted: dict[str, float] = {}
        self.rss_peak = 0.0
        self.all_lifted = threading.Event()
        self.controller: ControllerProcess | None = None

    def make_networks(self) -> None:
        # A /22 each (1,022 addresses), in 10.200.0.0/14 and up.
        for i, subnet in enumerate(f"10.{200 + 4 * n}.0.0/22" for n in range(self.network_count)):
            name = f"mna-bench-{self.tag}-{i}"
            self.kube.create(NETWORK_PARAMS, {
                "apiVersion": f"{names.PARAMS_GROUP}/{names.PARAMS_VERSION}", "kind": names.PARAMS_KIND,
                "metadata": {"name": name},
                "spec": {"topology": "L2", "ipv4": {"subnet": subnet, "gateway": subnet.replace(".0/22", ".1")}}})
            self.params.append(name)
            self.kube.create(POD_NETWORKS, {
                "apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.POD_NETWORK_KIND,
                "metadata": {"name": name},
                "spec": {"provider": names.PROVIDER, "parametersRefs": [
                    {"group": names.PARAMS_GROUP, "kind": names.PARAMS_KIND, "name": name}]}})
            self.networks.append(name)
        deadline = time.monotonic() + 60
        while not all(network_ready(self.kube, n) for n in self.networks):
            if time.monotonic() > deadline:
                raise SystemExit("networks did not become Ready")
            time.sleep(0.2)

    def note_lifted(self, pod: client.V1Pod) -> None:
        """Record when a pod first shows its allocations and no scheduling gate."""
        assert pod.metadata is not None and pod.metadata.name is not None and pod.spec is not None
        gates = pod.spec.scheduling_gates or []
        annotations = pod.metadata.annotations or {}
        name = pod.metadata.name
        if (not any(g.name == names.SCHEDULING_GATE for g in gates)
                and names.ALLOCATIONS_ANNOTATION in annotations and name not in self.lifted):
            self.lifted[name] = time.monotonic()
            if len(self.lifted) >= self.pods:
                self.all_lifted.set()

    def sample_rss(self, stop: threading.Event, pid: int) -> None:
        while not stop.wait(0.2):
            self.rss_peak = max(self.rss_peak, rss_mib(pid))

    def create_pods(self, namespace: str, created: dict[str, float]) -> None:
        nets = json.dumps([{"podNetworkName": n} for n in self.networks])

        def one(i: int) -> None:
            name = f"p{i:04d}"
            body = {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "annotations": {names.NETWORKS_ANNOTATION: nets}},
                    # Nothing matches the selector: the pods stay unscheduled, no node runs them.
                    "spec": {"nodeSelector": {"multinet.io/bench": "none"}, "terminationGracePeriodSeconds": 0,
                             "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}
            created[name] = time.monotonic()
            self.core.create_namespaced_pod(namespace, body)  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, range(self.pods)))

    def floor(self) -> dict[str, float]:
        """The same pods created the same way with no controller running and no webhook
        registered: the rate the apiserver (and this client) take them at, alone. The
        controller's figure cannot pass it: each of its pods is one of these creates."""
        remove_webhooks(self.kube, admission.CONFIGURATION_NAME)
        namespace = f"{self.namespace}-floor"
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        deadline = time.monotonic() + 60
        while not self.core.list_namespaced_service_account(namespace).items:  # pods need the default account
            if time.monotonic() > deadline:
                raise SystemExit(f"bench-controller: no default service account in {namespace} after 60 s")
            time.sleep(0.2)
        try:
            t0 = time.monotonic()
            self.create_pods(namespace, {})
            seconds = time.monotonic() - t0
        finally:
            self.core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
            self.core.delete_namespace(namespace)
        return {"create_seconds": round(seconds, 3), "pods_per_second": round(self.pods / seconds, 1)}

    def run(self, log: Path) -> dict[str, Any]:
        floor = self.floor()
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace)))
        self.controller = ControllerProcess(self.kube, self.kubeconfig, log, self.workers)
        self.controller.start()
        pid = self.controller.pid
        idle_rss = rss_mib(pid)
        self.make_networks()
        stop = threading.Event()
        pods = PodWatch(self.core, self.namespace, self.note_lifted)
        sampler = threading.Thread(target=self.sample_rss, args=(stop, pid), daemon=True)
        pods.start()  # the watch is open before the first pod exists
        sampler.start()
        time.sleep(0.5)
        cpu0 = cpu_seconds(pid)
        t0 = time.monotonic()
        self.create_pods(self.namespace, self.created)
        created_done = time.monotonic()
        self.all_lifted.wait(600)
        stop.set()
        pods.stop()
        sampler.join(5)
        cpu = cpu_seconds(pid) - cpu0
        latencies = [self.lifted[n] - self.created[n] for n in self.lifted]
        end = max(self.lifted.values()) if self.lifted else time.monotonic()
        return {
            "benchmark": "controller: creation -> scheduling gate lifted with addresses",
            "pods": self.pods, "networks_per_pod": len(self.networks), "controller_workers": self.workers,
            "pods_completed": len(self.lifted),
            "create_seconds": round(created_done - t0, 3),
            "total_seconds": round(end - t0, 3),
            "pods_per_second": round(len(self.lifted) / (end - t0), 1),
            "floor_no_controller": floor,
            "ratio_to_floor": round(len(self.lifted) / (end - t0) / floor["pods_per_second"], 2),
            "latency_seconds": {
                "p50": round(statistics.median(latencies), 3), "p99": round(percentile(sorted(latencies), 0.99), 3),
                "max": round(max(latencies), 3)} if latencies else None,
            "controller_rss_mib": {"idle": idle_rss, "peak": self.rss_peak},
            "controller_cpu_seconds": round(cpu, 2),
            "address_conflicts": self.conflicts(),
            "host_cpus": os.cpu_count(),
        }

    def conflicts(self) -> int:
        """Addresses held by more than one pod on the same network."""
        holders: Counter[tuple[str, str]] = Counter()
        for pod in self.core.list_namespaced_pod(self.namespace).items:
            text = ((pod.metadata and pod.metadata.annotations) or {}).get(names.ALLOCATIONS_ANNOTATION)
            for a in parse_allocations(text) if text else ():
                holders.update((a.pod_network_name, ip) for ip in a.ips)
        return sum(n - 1 for n in holders.values() if n > 1)

    def cleanup(self) -> None:
        self.core.delete_collection_namespaced_pod(self.namespace, grace_period_seconds=0)
        self.core.delete_namespace(self.namespace)
        # Wait for the releases before the controller stops, so no address is left behind.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(
                c["spec"]["podNetworkName"] in self.networks
                for c in self.kube.list(IP_ALLOCATIONS)):
            time.sleep(1)
        for resource, items in ((POD_NETWORKS, self.networks), (NETWORK_PARAMS, self.params)):
            for name in items:
                try:
                    self.kube.delete(resource, name)
                except NotFound:
                    pass
        if self.controller is not None:
            self.controller.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--workers", type=int, default=16, help="controller worker threads")
    parser.add_argument("--networks", type=int, default=2, choices=range(1, 9), metavar="1..8",
                        help="secondary networks per pod (default %(default)s)")
    parser.add_argument("--out", default=str(HERE.parents[1] / "build" / "bench" / "controller.json"))
    args = parser.parse_args()
    if args.pods > 1000:
        parser.error("--pods: at most 1000 (each network is a /22)")
    bench = Bench(args.kubeconfig, args.pods, args.workers, args.networks)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    log = Path(args.out).with_suffix(".controller.log")
    try:
        result = bench.run(log)
    finally:
        bench.cleanup()
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["pods_completed"] == args.pods and result["address_conflicts"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
