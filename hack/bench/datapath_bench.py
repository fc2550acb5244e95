"""Datapath benchmark: programming scale, policy cost and flood resilience.

Runs inside its own network namespaces (prefix mndb) and writes JSON.
  1. time to program N services x M endpoints on a secondary network, beside
     `nft -f` of the same table into a fresh namespace, and one endpoint
     change step by step (compile, diff, Write, the target's share), from
     scratch beside the incremental compile (datapath_change.py);
     one Write of many host routes beside `ip -batch` of the same routes;
  2. iperf3 TCP throughput between two pods on a secondary network (across
     two nodes, over VXLAN) beside a bare VXLAN path between pods built
     alike (also with conntrack alone on it), and with no policy and with a
     10,000-peer policy;
  3. that throughput while a third pod floods connections the policy denies,
     and that the target's denied counter saw exactly those attempts;
  4. the time to read every counter at N services: the service table's direct
     counters over P4Runtime, and one scrape of the target's /metrics, beside
     the netlink dumps it makes, nft's JSON listing of the same counters and
     prometheus_client's rendering of the same series (datapath_counters.py);
  5. the IPU targets' RSS idle, at N services and with the N-peer policy, and
     this process's (the compile and client the agent would hold).
Throughput runs alternate round by round; medians are reported with samples.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import socket
import urllib.request
import statistics
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.compile import compile_policies, compile_remote_routes, compile_services  # noqa: E402
import datapath_floors as floors  # noqa: E402
import kernel_profile  # noqa: E402
from bench_common import rss_mib  # noqa: E402
from datapath_change import endpoint_changes  # noqa: E402
from datapath_counters import bench_counters  # noqa: E402
from datapath.client.datapath import P4RuntimeDatapath  # noqa: E402
from datapath.client.p4rt import P4RuntimeClient, wait_for  # noqa: E402
from datapath.netns import popen_in, run_in  # noqa: E402
from tests.support.testbed import Target, Testbed, start_target  # noqa: E402
from podnetwork.allocations import Allocation, encode_allocations  # noqa: E402
from podnetwork.names import (ALLOCATIONS_ANNOTATION, ENDPOINTSLICE_NETWORK_LABEL,  # noqa: E402
                              POD_NETWORK_ANNOTATION, SERVICE_VIP_ANNOTATION)

PREFIX = "mndb"
NET, NET_ID = "bench", 4242


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def services(count: int, endpoints: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    svcs, slices = [], []
    for i in range(count):
        name = f"svc{i}"
        vip = f"10.{96 + i // 65536}.{(i // 256) % 256}.{i % 256}"
        svcs.append({"metadata": {"name": name, "namespace": "bench", "annotations": {
            POD_NETWORK_ANNOTATION: NET, SERVICE_VIP_ANNOTATION: vip}},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
        slices.append({"metadata": {"name": f"{name}-{NET}", "namespace": "bench", "labels": {
            "kubernetes.io/service-name": name, ENDPOINTSLICE_NETWORK_LABEL: NET}},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.200.{(i * endpoints + j) // 250 % 250}.{(i * endpoints + j) % 250 + 1}"]}
                          for j in range(endpoints)]})
    return svcs, slices


def pod_obj(name: str, node: str, address: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "bench", "labels": labels, "annotations": {
        ALLOCATIONS_ANNOTATION: encode_allocations((Allocation(NET, "net1", NET_ID, (f"{address}/16",)),))}},
        "spec": {"nodeName": node}, "status": {"phase": "Running"}}


def bench_programming(dp: P4RuntimeDatapath, ipu_ns: str, prefix: str, count: int, endpoints: int,
                      metrics_url: str | None, target_pid: int, rounds: int) -> dict[str, Any]:
    svcs, slices = services(count, endpoints)
    start = time.monotonic()
    entries = compile_services(svcs, slices, {NET: NET_ID})
    compiled = time.monotonic()
    written = dp.replace_state(entries)
    programmed = time.monotonic()
    # The target holds the tables it realized; this process, what the agent would (the
    # compiled entries and the client's copy of the written state).
    memory = {"ipu_target_rss_mib": rss_mib(target_pid), "driver_rss_mib": rss_mib(os.getpid())}
    # The kernel's own time to load the same table, in this run.
    floor = floors.nft_floor(ipu_ns, prefix)
    # One endpoint of one service changes: the agent's whole path, step by step,
    # from scratch and incrementally. One pod holds an address on the network, so it is routed.
    listings = {"pods": [pod_obj("anchor", "n1", "10.50.0.99", {})], "namespaces": [], "nodes": [],
                "services": svcs, "slices": slices, "policies": []}
    change = endpoint_changes(dp, "n1", listings, rounds, metrics_url)
    counters = bench_counters(dp, ipu_ns, prefix, metrics_url, target_pid)
    dp.replace_state([])  # clear before the throughput runs
    total = programmed - start
    return {"services": count, "endpoints_per_service": endpoints, "updates_written": written,
            "compile_seconds": round(compiled - start, 3), "program_seconds": round(programmed - compiled, 3),
            "total_seconds": round(total, 3), "kernel_floor": floor,
            "ratio_program_to_nft_load": round((programmed - compiled) / floor["nft_load_seconds"], 3),
            "ratio_total_to_nft_load": round(total / floor["nft_load_seconds"], 3),
            "endpoint_change": change, "counters": counters, "memory_at_services": memory}


def iperf(client_ns: str, server_ns: str, server_ip: str, seconds: int) -> float:
    server = popen_in(server_ns, ["iperf3", "-s", "-1", "-p", "5201"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = run_in(client_ns, ["iperf3", "-c", server_ip, "-p", "5201", "-t", str(seconds), "-J"],
                     timeout=seconds + 30)
        return float(json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"])
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(timeout=10)


def policy_drops(ipu_ns: str, prefix: str) -> int:
    """Packets the policy groups denied on a node, from the kernel itself (its `pst_d_*` counters)."""
    table = f"{prefix}ipu".replace("-", "_")
    out = json.loads(run_in(ipu_ns, ["nft", "-j", "list", "counters", "table", "inet", table]).stdout)
    return sum(item["counter"]["packets"] for item in out["nftables"]
               if "counter" in item and item["counter"]["name"].startswith("pst_d_"))


def metrics_denied(url: str | None, network: int) -> float | None:
    """The denied packets the target's /metrics reports for a network."""
    if not url:
        return None
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=300) as response:
        text = response.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "multinet_ipu_network_packets_total" and s.labels.get("network") == str(network)
               and s.labels.get("verdict") == "denied")


FLOOD = """
import socket, sys, time
dst, port, limit, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
start = time.monotonic()
end, sent = start + seconds, 0
while sent < limit and time.monotonic() < end:
    s = socket.socket(); s.setblocking(False)
    try:
        s.connect_ex((dst, port))
    finally:
        s.close()
    sent += 1
print(sent, time.monotonic() - start)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--peers", type=int, default=10000)
    parser.add_argument("--routes", type=int, default=100000, help="host routes in the one-Write route benchmark")
    parser.add_argument("--seconds", type=int, default=3, help="length of each iperf3 run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--change-rounds", type=int, default=5,
                        help="endpoint changes each way (from scratch, incremental), alternating")
    parser.add_argument("--flood-limit", type=int, default=200000, help="at most this many denied connection attempts")
    parser.add_argument("--out", default="build/bench/datapath.json", help="write JSON here (default: %(default)s)")
    parser.add_argument("--skip-traffic", action="store_true", help="programming and counter reads only")
    parser.add_argument("--perf", type=Path, metavar="DIR",
                        help="before the rounds, one run through the IPU and one on the bare path under "
                             "`perf record -a` (data in DIR): the share of netfilter and the FIB in each")
    parser.add_argument("--prefix", default=PREFIX, help="of every namespace, link and table made (<= 6 characters)")
    args = parser.parse_args()
    prefix = args.prefix

    result: dict[str, Any] = {"prefix": prefix, "load_average_at_start": list(os.getloadavg()),
                              "cpus": os.cpu_count()}
    tb = Testbed(prefix)
    bare_tb: Testbed | None = None
    targets: list[Target] = []
    logs = ROOT / "build" / "bench" / f"{prefix}-logs"  # the targets' logs, kept beside the report
    logs.mkdir(parents=True, exist_ok=True)
    try:
        n1, n2 = tb.add_node("n1"), tb.add_node("n2")
        # What the target found in this kernel and what it uses it for.
        features = subprocess.run([sys.executable, "-m", "multinet.cli", "ipu", "--netns", n1.ipu_ns, "--prefix",
                                   prefix, "--features"], capture_output=True, text=True, check=True, cwd=ROOT)
        result["kernel_features"] = json.loads(features.stdout)
        sizes = {"service": max(16384, args.services), "policy_rule": max(262144, args.peers * 2),
                 "route": max(65536, args.routes + 1024)}
        # A tree without --metrics-port (measuring an older revision) runs without it.
        metrics = "metrics_port" in inspect.signature(start_target).parameters
        for node in (n1, n2):
            extra: dict[str, Any] = {"metrics_port": free_port()} if metrics else {}
            targets.append(start_target(node, free_port(), prefix, str(logs / f"{node.name}.log"), sys.executable,
                                        sizes, **extra))
        from datapath.pipeline import pipeline

        dps = {}
        for t in targets:
            wait_for(t.address, timeout=300)  # a loaded machine starts targets slowly
            dps[t.node.name] = dp = P4RuntimeDatapath(P4RuntimeClient(t.address, pipeline=pipeline(sizes)))
            dp.reconnect()
        result["ipu_target_rss_mib_idle"] = [rss_mib(t.process.pid) for t in targets]

        result["programming"] = bench_programming(dps["n1"], n1.ipu_ns, prefix, args.services, args.endpoints,
                                                  getattr(targets[0], "metrics_url", None), targets[0].process.pid,
                                                  args.change_rounds)
        router = tb.add_pod(n1, "router", NET_ID, "10.50.0.9/16")
        dps["n1"].attach(router.attachment)
        result["routes"] = floors.routes(dps["n1"], router, NET_ID, args.routes, prefix)
        dps["n1"].detach(router.attachment)
        if args.skip_traffic:
            return finish(result, args.out)

        # Two servers on node 2: "open" has no policy, "guarded" is selected by
        # a 10,000-peer policy. Runs alternate between them, round by round, so
        # load from other work on the machine hits both alike.
        open_srv = tb.add_pod(n2, "open", NET_ID, "10.50.0.2/16")
        guarded = tb.add_pod(n2, "guarded", NET_ID, "10.50.0.5/16")
        client = tb.add_pod(n1, "client", NET_ID, "10.50.0.3/16")
        attacker = tb.add_pod(n1, "attacker", NET_ID, "10.50.0.4/16")
        for p in (open_srv, guarded):
            dps["n2"].attach(p.attachment)
        for p in (client, attacker):
            dps["n1"].attach(p.attachment)
        objs = [pod_obj(p.name, p.node.name, p.ip, {"app": p.name}) for p in (open_srv, guarded, client, attacker)]
        vteps = {"n1": n1.vtep, "n2": n2.vtep}
        routes = {n: compile_remote_routes(objs, n, vteps, {NET: NET_ID}) for n in ("n1", "n2")}
        dps["n1"].replace_state(routes["n1"])
        # 10,000 peers allowed to the guarded server's iperf port (the client among them).
        peers: list[dict[str, Any]] = [{"ipBlock": {"cidr": f"10.{60 + i // 65536}.{(i // 256) % 256}.{i % 256}/32"}}
                 for i in range(args.peers - 1)]
        peers.append({"podSelector": {"matchLabels": {"app": "client"}}})
        pol = {"metadata": {"name": "big", "namespace": "bench", "annotations": {POD_NETWORK_ANNOTATION: NET}},
               "spec": {"podSelector": {"matchLabels": {"app": "guarded"}}, "policyTypes": ["Ingress"],
                        "ingress": [{"from": peers, "ports": [{"port": 5201}]}]}}
        start = time.monotonic()
        entries = compile_policies([pol], objs, [], {NET: NET_ID}, node_name="n2")
        written = dps["n2"].replace_state(routes["n2"] + entries)
        policy_program = time.monotonic() - start
        policy_memory = {"ipu_target_rss_mib": rss_mib(targets[1].process.pid), "driver_rss_mib": rss_mib(os.getpid())}

        # The same two-node path without the pipeline: a bare VXLAN between pod namespaces built alike.
        bare_tb = Testbed(f"{prefix}b")
        bare_client, bare_srv = floors.bare_vxlan(bare_tb, NET_ID)
        samples: dict[str, list[float]] = {"open": [], "bare_vxlan": [], "bare_vxlan_conntrack": [], "guarded": [],
                                           "guarded_under_flood": []}
        attempts = dropped = 0
        flood_seconds = 0.0
        runs: dict[str, Callable[[], float]] = {
            "open": lambda: iperf(client.netns, open_srv.netns, open_srv.ip, args.seconds),
            "bare_vxlan": lambda: iperf(bare_client.netns, bare_srv.netns, bare_srv.ip, args.seconds)}
        profiles: dict[str, Any] = {}
        if args.perf is not None:  # one profiled run each, before the rounds and not among their samples
            if not kernel_profile.available():
                raise SystemExit("bench-datapath: --perf needs perf (Debian: linux-perf)")
            for name, run in runs.items():
                gbps, profiles[name] = kernel_profile.profiled(args.perf / f"{name}.data", args.seconds, run)
                profiles[name]["gbps"] = round(gbps / 1e9, 3)
        for _ in range(args.rounds):
            for name, run in runs.items():
                samples[name].append(run())
            floors.bare_conntrack(bare_tb, bare_client, bare_srv, NET_ID, on=True)
            samples["bare_vxlan_conntrack"].append(runs["bare_vxlan"]())  # the same path, conntrack on
            floors.bare_conntrack(bare_tb, bare_client, bare_srv, NET_ID, on=False)
            samples["guarded"].append(iperf(client.netns, guarded.netns, guarded.ip, args.seconds))
            # The attacker floods connections to a port the policy denies.
            flood = popen_in(attacker.netns, [sys.executable, "-c", FLOOD, guarded.ip, "5202",
                                              str(args.flood_limit), str(args.seconds + 2)], stdout=-1)
            time.sleep(0.5)
            samples["guarded_under_flood"].append(iperf(client.netns, guarded.netns, guarded.ip, args.seconds))
            out, _ = flood.communicate(timeout=args.seconds + 30)
            sent, elapsed = out.split()
            attempts, flood_seconds = attempts + int(sent), flood_seconds + float(elapsed)
        dropped = policy_drops(n2.ipu_ns, prefix)
        reported = metrics_denied(getattr(targets[1], "metrics_url", None), NET_ID)
        median = {k: statistics.median(v) for k, v in samples.items()}
        result["policy"] = {
            "peers": args.peers, "policy_updates_written": written, "policy_program_seconds": round(policy_program, 3),
            "memory_at_peers": policy_memory,
            "rounds": args.rounds, "seconds_per_run": args.seconds,
            "throughput_no_policy_gbps": round(median["open"] / 1e9, 3),
            "throughput_with_policy_gbps": round(median["guarded"] / 1e9, 3),
            "ratio_with_policy": round(median["guarded"] / median["open"], 3),
            "throughput_bare_vxlan_gbps": round(median["bare_vxlan"] / 1e9, 3),
            "ratio_pipeline_to_bare_vxlan": round(median["open"] / median["bare_vxlan"], 3),
            # The same bare path with conntrack alone: the share of the gap any stateful pipeline pays.
            "throughput_bare_vxlan_conntrack_gbps": round(median["bare_vxlan_conntrack"] / 1e9, 3),
            "ratio_pipeline_to_bare_vxlan_conntrack": round(median["open"] / median["bare_vxlan_conntrack"], 3),
            "ratio_bare_vxlan_conntrack_to_bare": round(median["bare_vxlan_conntrack"] / median["bare_vxlan"], 3),
            "samples_gbps": {k: [round(x / 1e9, 3) for x in v] for k, v in samples.items()},
            # --perf: of one run each before the rounds, percent of all samples in netfilter and the FIB
            "kernel_profile": profiles or None,
            "spread_gbps": {k: [round(min(v) / 1e9, 3), round(statistics.median(v) / 1e9, 3), round(max(v) / 1e9, 3)]
                            for k, v in samples.items()},
        }
        result["flood"] = {
            "denied_connection_attempts": attempts, "flood_seconds": round(flood_seconds, 2),
            "attempts_per_second": round(attempts / flood_seconds),
            "packets_dropped_by_policy": dropped,
            # What /metrics says; equal to the attempts when each was one SYN.
            "denied_packets_in_metrics": reported,
            # One generator process: on a small machine it competes with iperf3 for CPU.
            "throughput_under_flood_gbps": round(median["guarded_under_flood"] / 1e9, 3),
            "ratio_to_quiet": round(median["guarded_under_flood"] / median["guarded"], 3),
        }
    finally:
        for t in targets:
            t.stop()
        tb.close()
        if bare_tb is not None:
            bare_tb.close()
    return finish(result, args.out)


def finish(result: dict[str, Any], out: str) -> int:
    result["load_average_at_end"] = list(os.getloadavg())
    text = json.dumps(result, indent=2)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
