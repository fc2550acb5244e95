"""The CNI benchmark behind hack/bench/cni (see there).

ADD and DEL of multinet, the reference plugins (the floor) and the peer
(Multus + Whereabouts + bridge), interleaved pod by pod on one apiserver:
in each round every system adds pod i, in an order that rotates with i,
before any adds pod i+1; then the same for DEL. A round's ratios compare
figures of the same round; the report gives min/median/max over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
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

from bench_common import spread, summary  # noqa: E402
from cni_e2e import bench_e2e  # noqa: E402
from cni_systems import REFERENCE_BIN, Multinet, MultinetAgent, Peer, PeerInstall, Reference, ShimStart, System, run_plugin, timed  # noqa: E402
from tests.support import cni as testing  # noqa: E402
from cni.install import plugin_script  # noqa: E402
from multinet.cluster.binaries import find_bin_dir  # noqa: E402
from multinet.cluster.control_plane import ControlPlane  # noqa: E402
from multinet.cluster.layout import Layout, default_state_dir  # noqa: E402


def log(msg: str) -> None:
    print(f"bench-cni: {msg}", file=sys.stderr, flush=True)


def run_round(systems: Sequence[System], tag: str, pods: int) -> dict[str, dict[str, list[float]]]:
    """One round: every system's pods added, interleaved pod by pod, then deleted the same way."""
    for system in systems:
        system.prepare(tag, pods)
    time.sleep(2)  # the agent's pod cache sees the pods: the common case is a cache hit
    samples: dict[str, dict[str, list[float]]] = {s.name: {"add": [], "del": []} for s in systems}
    for verb in ("add", "del"):
        for i in range(pods):
            shift = i % len(systems)
            for system in (*systems[shift:], *systems[:shift]):
                call = system.add if verb == "add" else system.delete
                samples[system.name][verb].append(call(i))
        if verb == "add":  # what each showed it made, outside the timed calls
            for system in systems:
                for i in range(pods):
                    system.check(i)
    for system in systems:
        system.finish()
    return samples


def ratios(rounds: list[dict[str, dict[str, list[float]]]], names: Sequence[str]) -> dict[str, Any]:
    """Per-round ratios of multinet (and of a baseline multinet, keys prefixed
    baseline_) to each other system, p50 and p99, and multinet's own tail."""
    out: dict[str, Any] = {}
    for ours, key in (("multinet", ""), ("multinet_baseline", "baseline_")):
        if ours not in names:
            continue
        for verb in ("add", "del"):
            mine = [summary(r[ours][verb]) for r in rounds]
            out[f"{key}multinet_{verb}_p99_over_p50"] = spread([o["p99_ms"] / o["p50_ms"] for o in mine])
            for other in names:
                if other.startswith("multinet"):
                    continue
                theirs = [summary(r[other][verb]) for r in rounds]
                for q in ("p50", "p99"):
                    out[f"{key}{verb}_{q}_vs_{other}"] = spread(
                        [o[f"{q}_ms"] / t[f"{q}_ms"] for o, t in zip(mine, theirs)])
    return out


def report_of(rounds: list[dict[str, dict[str, list[float]]]], names: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        out[name] = {}
        for verb in ("add", "del"):
            per_round = [summary(r[name][verb]) for r in rounds]
            out[name][verb] = {
                "p50_ms": spread([s["p50_ms"] for s in per_round]),
                "p99_ms": spread([s["p99_ms"] for s in per_round]),
                "pooled": summary([x for r in rounds for x in r[name][verb]]),
            }
    out["ratios"] = ratios(rounds, names)
    return out


def shim_start(installed: str, runs: int) -> dict[str, Any]:
    """VERSION round trips: the installed plugin (python -SE), the reference
    bridge, and bare interpreters (what any Python plugin pays at least)."""
    env = {"CNI_COMMAND": "VERSION"}
    version = {"cniVersion": "1.1.0"}
    series: dict[str, Callable[[], Any]] = {
        "multinet_cni_installed": lambda: run_plugin(installed, env, version),
        "reference_bridge": lambda: run_plugin(f"{REFERENCE_BIN}/bridge", env, version),
        "python_bare_start_no_site": lambda: subprocess.run([sys.executable, "-SE", "-c", "pass"], check=True),
        "python_no_site_import_json": lambda: subprocess.run([sys.executable, "-SE", "-c", "import json"], check=True),
    }
    samples: dict[str, list[float]] = {k: [] for k in series}
    for _ in range(runs):  # interleaved, so load changes hit every series alike
        for name, fn in series.items():
            samples[name].append(timed(fn))
    return {name: summary(values) for name, values in samples.items()}


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def commit_of(tree: Path) -> str:
    proc = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() or f"not a git tree: {tree.name}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=40, help="pods per round and system")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--secondaries", default="1,3", help="secondary networks per pod, one run each")
    parser.add_argument("--shim-runs", type=int, default=40)
    parser.add_argument("--e2e", choices=("on", "off"), default="on",
                        help="also time pod create to ADD's return against the peer, with multinet's controller "
                             "running for that phase (needs the peer)")
    parser.add_argument("--peer", choices=("auto", "build", "off"), default="auto",
                        help="the Multus + Whereabouts peer: when built (auto), build it first, or not at all")
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the multinet source tree to measure (another commit's, for a before/after table)")
    parser.add_argument("--baseline", type=Path, metavar="TREE",
                        help="also measure the multinet of this source tree in the same rounds (before/after)")
    parser.add_argument("--prefix", default=os.environ.get("MULTINET_TEST_PREFIX") or "mnb",
                        help="prefix of the namespaces, links and objects made (distinct from a test run's)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="also write py-spy's samples of the agent (folded stacks) and the shim's -X importtime here")
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
        report = bench(plane.layout.admin_kubeconfig, args)
    finally:
        if started:
            plane.down(log)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


def peer_dir(mode: str) -> Path | None:
    script = ROOT / "hack" / "bench" / "cni-peer"
    if mode == "off":
        return None
    if mode == "build":
        return Path(subprocess.run([str(script)], check=True, capture_output=True, text=True).stdout.strip()).parent
    bin_dir = Path(subprocess.run([str(script), "--print"], check=True, capture_output=True, text=True).stdout.strip())
    if all((bin_dir / name).exists() for name in ("multus", "whereabouts")):
        return bin_dir.parent
    log("peer not built (hack/bench/cni-peer builds it): measuring without it")
    return None


def profile(out: Path, agent: testing.AgentProcess, plugin: Path) -> Callable[[], None]:
    """py-spy (from PyPI) sampling the agent for the whole run, every thread,
    idle ones too (a wait on the kernel or the apiserver is time spent); and
    what the shim imports, by -X importtime. Returns what stops the sampler."""
    out.mkdir(parents=True, exist_ok=True)
    shim = subprocess.run([sys.executable, "-SE", "-X", "importtime", str(plugin)], env={"CNI_COMMAND": "VERSION"},
                          input='{"cniVersion": "1.1.0"}', capture_output=True, text=True)
    (out / "shim-importtime.txt").write_text(shim.stderr)
    spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if spy is None or agent.proc is None:
        log("py-spy not installed (pip install py-spy): no agent profile")
        return lambda: None
    sampler = subprocess.Popen([spy, "record", "--pid", str(agent.proc.pid), "--idle", "--nonblocking", "--rate", "100",
                                "--format", "raw", "--output", str(out / "agent.folded")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        sampler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        sampler.wait(60)
    return stop


def start_multinet(tree: Path, work: Path, objects: testing.ClusterObjects, netns: testing.Namespaces,
                   kubeconfig: Path, prefix: str, tag: str) -> tuple[testing.Node, Path]:
    """A node (its namespaces, Node object, agent process) and the installed
    plugin, both running the multinet of `tree`."""
    work.mkdir()
    plugin = work / "bin" / "multinet-cni"
    plugin.parent.mkdir()
    plugin.write_text(plugin_script().replace(repr(str(ROOT)), repr(str(tree))))
    plugin.chmod(0o755)
    namespace, node_name = objects.namespace(), objects.node()
    host, ipu = netns.new(f"{tag}bhost"), netns.new(f"{tag}bipu")
    agent = testing.AgentProcess(work, node_name, kubeconfig, [
        "--ipu-netns", ipu, "--host-netns", host, "--link-prefix", prefix + tag, "--pod-cidr", "10.244.0.0/20",
        "--log-level", os.environ.get("BENCH_AGENT_LOG", "WARNING")])
    # The agent process imports the tree: `python -m` puts its working
    # directory first on the path, before PYTHONPATH.
    os.environ["PYTHONPATH"] = str(tree)
    home = os.getcwd()
    os.chdir(tree)
    try:
        agent.start()
    finally:
        os.chdir(home)
        del os.environ["PYTHONPATH"]
    return testing.Node(node_name, namespace, host, ipu, "", agent, objects, netns, kubeconfig, str(plugin)), plugin


def bench(kubeconfig: Path, args: argparse.Namespace) -> dict[str, Any]:
    prefix, tree = args.prefix, args.tree.resolve()
    api = config.new_client_from_config(config_file=str(kubeconfig))
    testing.ensure_crds(api)
    objects = testing.ClusterObjects(api, prefix)
    netns = testing.Namespaces(prefix)
    agents: list[testing.AgentProcess] = []
    closers: list[Callable[[], None]] = []
    work = Path(tempfile.mkdtemp(prefix=f"{prefix}-bench-"))
    built = peer_dir(args.peer)
    report: dict[str, Any] = {
        "machine": machine(), "multinet_commit": commit_of(tree),
        "config": {"pods_per_round": args.pods, "rounds": args.rounds,
                   "peer": "Multus v4.3.0 (thin) + Whereabouts v0.9.4 + bridge" if built else None,
                   "reference": "bridge + host-local, once per interface"},
    }
    try:
        node, plugin = start_multinet(tree, work / "multinet", objects, netns, kubeconfig, prefix, "")
        agents.append(node.agent)
        log(f"shim start time over {args.shim_runs} runs")
        report["version_start"] = shim_start(str(plugin), args.shim_runs)
        if args.profile is not None:
            closers.append(profile(args.profile, node.agent, plugin))
        baseline = None
        if args.baseline is not None:
            baseline, _ = start_multinet(args.baseline.resolve(), work / "baseline", objects, netns, kubeconfig,
                                         prefix, "o")
            agents.append(baseline.agent)
            report["baseline_commit"] = commit_of(args.baseline.resolve())
        networks = [objects.network(f"{prefix}-bench{n}-{secrets.token_hex(2)}", {
            "topology": "L2", "ipv4": {"subnet": f"10.{50 + n}.0.0/16", "gateway": f"10.{50 + n}.255.254"},
            "mtu": 1400}) for n in range(3)]
        install = PeerInstall(built, work) if built else None
        if install is not None:
            created = install.install_crds(api)
            closers.append(lambda: install.remove_crds(api, created))
        for secondaries in (int(s) for s in args.secondaries.split(",")):
            if install is not None and args.e2e == "on":
                report[f"end_to_end_{secondaries}"] = bench_e2e(
                    run_round, kubeconfig, tree, work / f"e2e-{secondaries}", node, networks, install, prefix,
                    secondaries, args.rounds, args.pods, log)
            systems: list[System] = [Multinet(node, networks, secondaries),
                                     Reference(node.host, work, prefix, secondaries, netns),
                                     MultinetAgent(node, networks, secondaries), ShimStart(plugin)]
            if baseline is not None:
                systems.append(Multinet(baseline, networks, secondaries, "multinet_baseline"))
            if install is not None:
                systems.append(Peer(api, objects, node.namespace, work, prefix, secondaries, kubeconfig,
                                    install, netns))
            closers += [getattr(s, "close") for s in systems if hasattr(s, "close")]
            rounds = []
            for r in range(args.rounds):
                log(f"{secondaries} secondary network(s), round {r + 1}/{args.rounds}: "
                    f"{args.pods} pods each of {', '.join(s.name for s in systems)}")
                rounds.append(run_round(systems, f"s{secondaries}r{r}", args.pods))
            report[f"secondaries_{secondaries}"] = report_of(rounds, [s.name for s in systems])
        report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        for close in closers:  # the profiler first, while the agent still runs
            close()
        for agent in agents:
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
