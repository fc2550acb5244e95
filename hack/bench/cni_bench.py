"""The CNI benchmark behind hack/bench/cni (see there)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the test rig lives in tests/support, not in the shipped packages

from kubernetes import config  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402
from urllib3.exceptions import HTTPError  # noqa: E402

from tests.support import cni as testing  # noqa: E402
from cni.install import install  # noqa: E402
from datapath import netns  # noqa: E402
from multinet.cluster.binaries import find_bin_dir  # noqa: E402
from multinet.cluster.control_plane import ControlPlane  # noqa: E402
from multinet.cluster.layout import Layout, default_state_dir  # noqa: E402

# Namespaces, links and cluster objects of the benchmark carry this prefix
# (--prefix or $MULTINET_TEST_PREFIX): distinct from a test run on the same machine.
PREFIX = os.environ.get("MULTINET_TEST_PREFIX") or "mnb"
REFERENCE_BIN = "/usr/lib/cni"


def log(msg: str) -> None:
    print(f"bench-cni: {msg}", file=sys.stderr, flush=True)


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p99_ms": round(p99 * 1000, 2),
            "n": len(ordered)}


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def in_netns(path: str) -> Callable[[], None]:
    """preexec: run a child inside a namespace, as a runtime living there would."""
    def enter() -> None:
        try:
            netns.enter(path)  # the project's one setns; in the forked child, before exec
        except OSError:
            os._exit(126)
    return enter


def run_plugin(binary: str, env: dict[str, str], conf: dict[str, Any], preexec: Callable[[], None] | None = None) -> dict[str, Any]:
    proc = subprocess.run([binary], input=json.dumps(conf), env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, preexec_fn=preexec)
    if proc.returncode != 0:
        raise RuntimeError(f"{binary} {env['CNI_COMMAND']} failed: {proc.stdout} {proc.stderr}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def shim_start(installed: str, runs: int) -> dict[str, Any]:
    """VERSION round trips: the installed plugin (python -SE), the console
    script pip makes (full `site`), the reference bridge, and bare interpreters."""
    env = {"CNI_COMMAND": "VERSION"}
    version = {"cniVersion": "1.1.0"}
    samples: dict[str, list[float]] = {k: [] for k in ("installed", "console", "bridge", "bare", "bare_S")}
    for _ in range(runs):  # interleaved, so load changes hit every series alike
        samples["installed"].append(timed(lambda: run_plugin(installed, env, version)))
        samples["console"].append(timed(lambda: run_plugin(testing.plugin_binary(), env, version)))
        samples["bridge"].append(timed(lambda: run_plugin(f"{REFERENCE_BIN}/bridge", env, version)))
        samples["bare"].append(timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)))
        samples["bare_S"].append(timed(lambda: subprocess.run([sys.executable, "-SE", "-c", "pass"], check=True)))
    return {
        "multinet_cni_installed": percentiles(samples["installed"]),
        "multinet_cni_console_script": percentiles(samples["console"]),
        "reference_bridge": percentiles(samples["bridge"]),
        "python_bare_start": percentiles(samples["bare"]),
        "python_bare_start_no_site": percentiles(samples["bare_S"]),
    }


def multinet_run(node: testing.Node, networks: list[str], pods: int, secondaries: int) -> dict[str, Any]:
    spaces = [node.netns.new("b") for _ in range(pods)]
    identities = []
    for i in range(pods):
        allocations = [testing.alloc(networks[n], f"net{n + 1}", [f"10.{50 + n}.{i // 250}.{i % 250 + 2}/16"])
                       for n in range(secondaries)]
        identities.append(node.pod(f"bench{secondaries}-{i}", allocations))
    time.sleep(2)  # let the agent's pod cache see them: the common case is a cache hit
    containers = [f"b{secrets.token_hex(6)}" for _ in range(pods)]
    add, delete = [], []
    for i in range(pods):
        add.append(timed(lambda: _ok(node.cni("ADD", spaces[i], identities[i], containers[i]))))
    for i in range(pods):
        delete.append(timed(lambda: _ok(node.cni("DEL", spaces[i], identities[i], containers[i]))))
    for space in spaces:
        testing.run("ip", "netns", "del", space)
        node.netns.made.remove(space)
    return {"add": percentiles(add), "del": percentiles(delete)}


def _ok(result: testing.PluginResult) -> None:
    if result.exit != 0:
        raise RuntimeError(f"multinet-cni failed: {result.out}")


def reference_run(host: str, work: Path, pods: int, secondaries: int, netns: testing.Namespaces) -> dict[str, Any]:
    """bridge + host-local, once per interface (eth0 + each secondary), as a
    runtime (or Multus) would call them for the same interfaces."""
    confs = []
    for n in range(secondaries + 1):
        confs.append({
            "cniVersion": "1.0.0", "name": f"{PREFIX}ref{n}", "type": "bridge",
            "bridge": f"{PREFIX}rb{n}{secrets.token_hex(2)}", "isGateway": n == 0, "mtu": 1400,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": f"10.{60 + n}.0.0/16"}]],
                     "dataDir": str(work / "ipam")},
        })
    spaces = [netns.new("r") for _ in range(pods)]
    enter = in_netns(f"/var/run/netns/{host}")
    bridge = f"{REFERENCE_BIN}/bridge"
    add, delete = [], []
    containers = [f"r{secrets.token_hex(6)}" for _ in range(pods)]

    def invoke_all(command: str, i: int) -> None:
        order = range(len(confs)) if command == "ADD" else reversed(range(len(confs)))
        for n in order:
            env = testing.cni_env(command, containers[i], spaces[i], ifname="eth0" if n == 0 else f"net{n}",
                                  path=REFERENCE_BIN)
            run_plugin(bridge, env, confs[n], enter)

    for i in range(pods):
        add.append(timed(lambda: invoke_all("ADD", i)))
    for i in range(pods):
        delete.append(timed(lambda: invoke_all("DEL", i)))
    for space in spaces:
        testing.run("ip", "netns", "del", space)
        netns.made.remove(space)
    for conf in confs:
        testing.run("ip", "-n", host, "link", "del", conf["bridge"], check=False)
    return {"add": percentiles(add), "del": percentiles(delete)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--shim-runs", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("build/bench/cni.json"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench-cni: needs root (network namespaces)")
    plane = ControlPlane(Layout(default_state_dir()))
    started = False
    if not plane.is_up():
        log("starting the local control plane")
        plane = ControlPlane(plane.layout, find_bin_dir(None, build=True))
        plane.up(log)
        started = True
    try:
        report = bench(plane.layout.admin_kubeconfig, args.pods, args.shim_runs)
    finally:
        if started:
            plane.down(log)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


def bench(kubeconfig: Path, pods: int, shim_runs: int) -> dict[str, Any]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    testing.ensure_crds(api)
    objects = testing.ClusterObjects(api, PREFIX)
    netns = testing.Namespaces(PREFIX)
    agent = None
    work = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-bench-"))
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "kernel": platform.release()}, "pods": pods}
    try:
        plugin = str(install(work / "bin"))
        log(f"shim start time over {shim_runs} runs")
        report["version_start"] = shim_start(plugin, shim_runs)
        namespace, node_name = objects.namespace(), objects.node()
        host, ipu = netns.new("bhost"), netns.new("bipu")
        agent = testing.AgentProcess(work, node_name, kubeconfig, [
            "--ipu-netns", ipu, "--host-netns", host, "--link-prefix", PREFIX, "--pod-cidr", "10.244.0.0/20",
            "--log-level", os.environ.get("BENCH_AGENT_LOG", "WARNING")])
        agent.start()
        node = testing.Node(node_name, namespace, host, ipu, "", agent, objects, netns, kubeconfig, plugin)
        networks = [objects.network(f"{PREFIX}-bench{n}-{secrets.token_hex(2)}", {
            "topology": "L2", "ipv4": {"subnet": f"10.{50 + n}.0.0/16", "gateway": f"10.{50 + n}.255.254"}, "mtu": 1400})
            for n in range(3)]
        for secondaries in (1, 3):
            log(f"multinet: {pods} pods with {secondaries} secondary network(s)")
            ours = multinet_run(node, networks, pods, secondaries)
            log(f"reference bridge+host-local: {pods} pods, {secondaries + 1} interfaces each")
            ref = reference_run(host, work, pods, secondaries, netns)
            report[f"secondaries_{secondaries}"] = {
                "multinet": ours, "reference_bridge_host_local": ref,
                "ratio_add_p50": round(ours["add"]["p50_ms"] / ref["add"]["p50_ms"], 3),
                "ratio_del_p50": round(ours["del"]["p50_ms"] / ref["del"]["p50_ms"], 3),
                "ratio_add_p99": round(ours["add"]["p99_ms"] / ref["add"]["p99_ms"], 3),
            }
    finally:
        if agent is not None:
            agent.stop()
        netns.close()
        shutil.rmtree(work, ignore_errors=True)
        try:
            objects.close()
        except (ApiException, HTTPError) as err:
            # A shared cluster may have been restarted under us: the figures
            # stand, the objects go with that cluster's state.
            log(f"cleanup of cluster objects failed: {err}")
    return report


if __name__ == "__main__":
    sys.exit(main())
