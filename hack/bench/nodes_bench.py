"""The real-nodes benchmark behind hack/bench/nodes (see there)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench_common import rss_mib, write_report
from kubernetes import client, config, watch

from cni.install import CONFLIST_NAME
from multinet.cluster import cgroups
from multinet.cluster.control_plane import ControlPlane
from multinet.cluster.layout import Layout
from multinet.cluster.nodes import NodePlan, Nodes
from multinet.cluster.processes import ProcessRecord

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.56"
NETWORKS = ("bench-a", "bench-b", "bench-c")
NAMESPACE = "bench"
ADDON_NAMESPACE = "multinet-system"  # deploy/'s namespace: multinet's own pods


def log(msg: str) -> None:
    print(f"bench-nodes: {msg}", file=sys.stderr, flush=True)


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"p50_s": round(statistics.median(ordered), 3), "p99_s": round(p99, 3),
            "max_s": round(ordered[-1], 3), "n": len(ordered)}


def multinet(env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "multinet.cli", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench-nodes: multinet {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def pod(name: str, networks: int) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {"app": "bench"}}
    if networks:
        metadata["annotations"] = {"multinetwork.networking.x-k8s.io/networks": json.dumps(
            [{"podNetworkName": n, "interfaceName": f"net{i}"} for i, n in enumerate(NETWORKS[:networks])])}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "pause", "image": AGNHOST, "args": ["pause"]}]}}


def ready(obj: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (obj.status.conditions or []))


def one_ready(core: client.CoreV1Api, name: str, networks: int) -> float:
    """Create one pod and wait for it to be Ready: seconds from the create call."""
    w = watch.Watch()
    stream = w.stream(core.list_namespaced_pod, NAMESPACE,
                      field_selector=f"metadata.name={name}", timeout_seconds=300)
    start = time.perf_counter()
    core.create_namespaced_pod(NAMESPACE, pod(name, networks))  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
    for event in stream:
        # The client yields None for a blank line of the stream; bookmarks are not asked for.
        if event is None or event["type"] == "BOOKMARK":
            continue
        if ready(event["object"]):
            w.stop()  # type: ignore[attr-defined]  # Watch.stop is missing from the kubernetes stubs
            return time.perf_counter() - start
    raise SystemExit(f"bench-nodes: {name} not Ready after 300s")


def one_by_one(core: client.CoreV1Api, count: int, variants: Sequence[tuple[int, str]]) -> dict[str, Any]:
    """`count` pods of each variant (secondary networks, label), one after another, each
    once the previous is Ready (they stay): the latency of one pod, without queueing
    behind others. The variants alternate pod by pod, so the machine's drift (and the
    nodes' work left from an earlier scenario) falls on each alike."""
    latencies: dict[str, list[float]] = {label: [] for _, label in variants}
    for i in range(count):
        for networks, label in variants:
            latencies[label].append(one_ready(core, f"{label}-{i:03d}", networks))
    results = {}
    for networks, label in variants:
        results[label] = {"pods": count, "secondary_networks": networks,
                          "create_to_ready": percentiles(latencies[label])}
        log(f"{label} one by one: {results[label]}")
    if len(variants) == 2:  # pod i of the second variant against pod i of the first
        (_, first), (_, second) = variants
        ratios = sorted(b / a for a, b in zip(latencies[first], latencies[second]))
        results["pairwise_ratio"] = {"of": f"{second} / {first}", "min": round(ratios[0], 2),
                                     "median": round(statistics.median(ratios), 2), "max": round(ratios[-1], 2)}
    return results


def burst(core: client.CoreV1Api, count: int, networks: int, label: str) -> dict[str, Any]:
    """Create `count` pods at once; each one's time from its create call to Ready (seen by a watch)."""
    created: dict[str, float] = {}
    became: dict[str, float] = {}
    done = threading.Event()

    def observe() -> None:
        w = watch.Watch()
        stream = w.stream(core.list_namespaced_pod, NAMESPACE,
                          label_selector="app=bench", timeout_seconds=600)
        for event in stream:
            # The client yields None for a blank line of the stream; bookmarks are not asked for.
            if event is None or event["type"] == "BOOKMARK":
                continue
            obj = event["object"]
            assert obj.metadata is not None and obj.metadata.name is not None  # the apiserver names every pod
            if ready(obj) and obj.metadata.name not in became:
                became[obj.metadata.name] = time.perf_counter()
                if len(became) == count:
                    w.stop()  # type: ignore[attr-defined]  # Watch.stop is missing from the kubernetes stubs
        done.set()

    watcher = threading.Thread(target=observe, daemon=True)
    watcher.start()
    time.sleep(0.5)  # the watch is open before the first create
    start = time.perf_counter()
    for i in range(count):
        name = f"{label}-{i:03d}"
        created[name] = time.perf_counter()
        core.create_namespaced_pod(NAMESPACE, pod(name, networks))  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
    create_s = time.perf_counter() - start  # admission webhooks included
    if not done.wait(600):
        raise SystemExit(f"bench-nodes: {label}: only {len(became)}/{count} pods Ready after 600s")
    latencies = [became[n] - created[n] for n in created]
    result = {"pods": count, "secondary_networks": networks, "create_to_ready": percentiles(latencies),
              "create_s": round(create_s, 2), "all_ready_s": round(max(became.values()) - start, 2)}
    log(f"{label}: {result}")
    return result


def clear(core: client.CoreV1Api, plans: list[NodePlan]) -> None:
    """Delete the pods and wait until the nodes have torn every one down (no
    container of theirs left in any containerd; multinet's own pods stay), so
    no teardown overlaps the next run."""
    core.delete_collection_namespaced_pod(NAMESPACE, label_selector="app=bench", grace_period_seconds=0)
    deadline = time.monotonic() + 600
    while core.list_namespaced_pod(NAMESPACE, label_selector="app=bench").items or \
            any(plan.containerd.containers(NAMESPACE) for plan in plans):
        if time.monotonic() > deadline:
            raise SystemExit("bench-nodes: pods not torn down after 600s")
        time.sleep(0.5)


def memory(plane: ControlPlane, plans: list[NodePlan]) -> dict[str, Any]:
    """RSS of every process of the cluster: control plane, per node kubelet,
    containerd, shims (and per pod), multinet's controller, agents, IPU targets."""
    records = {r.name: r for p in plane.layout.pids.glob("*.json") if (r := ProcessRecord.load(p))}
    out: dict[str, Any] = {name: rss_mib(r.pid) for name, r in sorted(records.items())}
    for plan in plans:
        runtime = set()
        for mount in cgroups.hierarchies():
            procs = mount / plan.cgroup_root / cgroups.RUNTIME / "cgroup.procs"
            if procs.exists():
                runtime |= {int(p) for p in procs.read_text().split()}
        own = {records[f"{kind}-{plan.name}"].pid for kind in ("containerd", "kubelet")}
        shims = [m for pid in runtime - own if (m := rss_mib(pid))]
        containers = [m for pid in cgroups.members(plan.cgroup_root) - runtime if (m := rss_mib(pid))]
        out[f"shims-{plan.name}"] = {"count": len(shims), "total_mib": round(sum(shims), 1),
                                     "per_shim_mib": round(sum(shims) / len(shims), 1) if shims else 0}
        out[f"containers-{plan.name}"] = {"processes": len(containers), "total_mib": round(sum(containers), 1)}
        out.update(multinet_parts(plan))
    return out


def multinet_parts(plan: NodePlan) -> dict[str, float]:
    """RSS of each multinet container on the node (its main process), by pod and
    container name: the add-on's controller, agent and IPU target run in pods."""
    tasks = {f[0]: int(f[1]) for line in plan.containerd.ctr("tasks", "list").splitlines()[1:]
             if len(f := line.split()) >= 2 and f[1].isdigit()}
    out: dict[str, float] = {}
    for cid in plan.containerd.containers(ADDON_NAMESPACE):
        labels = json.loads(plan.containerd.ctr("containers", "info", cid)).get("Labels") or {}
        if labels.get("io.cri-containerd.kind") != "container" or cid not in tasks:
            continue  # a sandbox (pause), or a container that ended (the init containers)
        pod, name = labels.get("io.kubernetes.pod.name", "?"), labels.get("io.kubernetes.container.name", "?")
        out[f"{pod}/{name}"] = rss_mib(tasks[cid])
    return out


def setup_networks(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    for i, name in enumerate(NETWORKS):
        custom.create_cluster_custom_object("multinet.io", "v1alpha1", "networkparams", {
            "apiVersion": "multinet.io/v1alpha1", "kind": "NetworkParams", "metadata": {"name": name},
            "spec": {"topology": "L2", "ipv4": {"subnet": f"10.{60 + i}.0.0/22"}, "mtu": 1450}})
        custom.create_cluster_custom_object("multinetwork.networking.x-k8s.io", "v1alpha1", "podnetworks", {
            "apiVersion": "multinetwork.networking.x-k8s.io/v1alpha1", "kind": "PodNetwork",
            "metadata": {"name": name},
            "spec": {"provider": "multinet.io",
                     "parametersRefs": [{"group": "multinet.io", "kind": "NetworkParams", "name": name}]}})
    deadline = time.monotonic() + 60
    for name in NETWORKS:
        while True:
            obj: Any = custom.get_cluster_custom_object("multinetwork.networking.x-k8s.io", "v1alpha1",
                                                        "podnetworks", name)
            if any(c["type"] == "Ready" and c["status"] == "True" for c in obj.get("status", {}).get("conditions", [])):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"bench-nodes: PodNetwork {name} not Ready")
            time.sleep(0.5)


def without_multinet(plans: list[NodePlan]) -> list[tuple[Path, str]]:
    """Take multinet's conflist out of every node: containerd then calls the bridge plugin itself."""
    saved = []
    for plan in plans:
        path = plan.cni_conf_dir / CONFLIST_NAME
        saved.append((path, path.read_text()))
        path.unlink()
    time.sleep(2)  # containerd reloads its CNI config on the directory's change
    return saved


def peer(core: client.CoreV1Api, plans: list[NodePlan], pods: int, label: str) -> dict[str, Any]:
    """The same pods with containerd calling the reference bridge plugin itself."""
    saved = without_multinet(plans)
    try:
        result: dict[str, Any] = {"cni": "reference bridge alone (peer)",
                                  "one_by_one": one_by_one(core, pods, [(0, f"{label}-seq")])[f"{label}-seq"]}
        clear(core, plans)
        result["burst"] = burst(core, pods, 0, f"{label}-burst")
        clear(core, plans)
    finally:
        for path, text in saved:
            path.write_text(text)
        time.sleep(2)
    return result


def with_multinet(core: client.CoreV1Api, plans: list[NodePlan], pods: int,
                  measure: Callable[[], Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Pods with 0 and with 3 secondary networks: one by one (alternating), then each as a
    burst; `measure` runs while the 3-network burst's pods are up."""
    seq = one_by_one(core, pods, [(0, "plain-seq"), (3, "multi-seq")])
    clear(core, plans)
    runs = [{"cni": "multinet (eth0 delegated to bridge)", "one_by_one": seq["plain-seq"],
             "burst": burst(core, pods, 0, "plain-burst")}]
    clear(core, plans)
    runs.append({"cni": "multinet", "one_by_one": seq["multi-seq"], "burst": burst(core, pods, 3, "multi-burst"),
                 "memory": measure()})
    clear(core, plans)
    return runs, seq["pairwise_ratio"]


def bench(env: dict[str, str], state: Path, pods: int) -> dict[str, Any]:
    # Other work on the machine slows every pod: its load is part of the result.
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                                          "load_average_at_start": os.getloadavg()}}
    log("cold start: multinet cluster up --nodes 2 (binaries and images cached)")
    report["cluster_up_nodes_2_s"] = round(multinet(env, "cluster", "up", "--nodes", "2"), 2)
    plane = ControlPlane(Layout(state / "cluster"))
    os.environ["MULTINET_STATE"] = str(state)  # Nodes names its namespaces as the CLI did
    plans = Nodes(plane).plans()
    api = config.new_client_from_config(str(plane.layout.admin_kubeconfig))
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": NAMESPACE}})  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
    while not core.list_namespaced_service_account(NAMESPACE).items:  # pods need the default account
        time.sleep(0.2)
    setup_networks(api)
    runs = [peer(core, plans, pods, "bridge")]
    multinet_runs, pairwise = with_multinet(core, plans, pods, lambda: memory(plane, plans))
    runs.extend(multinet_runs)
    report["memory_mib_with_pods"] = runs[-1].pop("memory")
    report["pairwise_ratio_3_networks_vs_0_one_by_one"] = pairwise
    # The peer once more: how far the machine drifted during the runs.
    runs.append(peer(core, plans, pods, "bridge-again"))
    report["pods"] = runs
    for mode in ("one_by_one", "burst"):
        plain, multi = (r[mode]["create_to_ready"]["p50_s"] for r in runs[1:3])
        report[f"p50_ratio_3_networks_vs_0_{mode}"] = round(multi / plain, 2)
    report["memory_mib_idle"] = memory(plane, plans)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    log("multinet cluster down")
    report["cluster_down_s"] = round(multinet(env, "cluster", "down"), 2)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("build/bench/nodes.json"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench-nodes: needs root (nodes)")
    offset = int(os.environ.get("MULTINET_PORT_OFFSET", "0")) + 10000  # beside the user's own cluster
    with tempfile.TemporaryDirectory(prefix="multinet-bench-") as tmp:
        env = {**os.environ, "MULTINET_STATE": tmp, "MULTINET_PORT_OFFSET": str(offset)}
        try:
            report = bench(env, Path(tmp), args.pods)
        except BaseException:
            multinet(env, "cluster", "down")
            raise
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
