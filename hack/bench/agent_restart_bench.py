"""The agent-restart benchmark behind hack/bench/agent-restart (see there)."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the test rig lives in tests/support, not in the shipped packages

from kubernetes import config  # noqa: E402

from agent.record import AttachmentRecord, Eth0Mode, OwnedLink, Phase, PlannedInterface, PodRef  # noqa: E402
from agent.store import StateStore  # noqa: E402
from datapath.ports import NetworkId, PortAttachment  # noqa: E402
from bench_common import control_plane, write_report  # noqa: E402  (this directory, sys.path[0] of a script run here)
from tests.support import cni as testing  # noqa: E402

PREFIX = "mnr"
# The floor: the same records read and parsed by a fresh interpreter that
# does nothing else, timed inside it (no interpreter start, as the agent's
# own start is taken out by the empty-state agent).
FLOOR = ("import sys, time; from pathlib import Path; from agent.store import StateStore; t = time.perf_counter(); "
         "n = len(StateStore(Path(sys.argv[1])).all()); print(n, time.perf_counter() - t)")


def log(msg: str) -> None:
    print(f"bench-agent-restart: {msg}", file=sys.stderr, flush=True)


def record(i: int, netns: str) -> AttachmentRecord:
    """A READY attachment with one secondary veth, as an ADD leaves it, of a pod
    in `netns` (live: the agent drops at start the attachments of gone namespaces)."""
    container = f"bench{i:06d}"
    address = f"10.{40 + i // 65536}.{i // 256 % 256}.{i % 256}/16"
    port = PortAttachment(f"uid-{i}", "bench", f"pod-{i}", "fronthaul", NetworkId(140), "net1",
                          f"{PREFIX}{i:06x}", (address,), "02:00:00:00:00:01", 1500)
    plan = PlannedInterface("net1", "fronthaul", None, 140, "veth", port.representor, port.mac, 1500,
                            (address,), (), (), False)
    return AttachmentRecord(
        network="multinet", container_id=container, ifname="eth0", netns=netns,
        pod=PodRef("bench", f"pod-{i}", f"uid-{i}"), mode=Eth0Mode.NONE, group=1000 + i, phase=Phase.READY,
        # The links themselves are not made (the agent does not look at them to start); the
        # node-side end is the bench's own name.
        links=(OwnedLink(netns, "net1"), OwnedLink(None, port.representor)),
        plans=(plan,), path=("/opt/cni/bin",), ports=(port,),
        result={"cniVersion": "1.1.0", "interfaces": [{"name": "net1", "sandbox": netns}],
                "ips": [{"address": address, "interface": 0}]})


def ready_time(agent: testing.AgentProcess) -> float:
    """Seconds from the agent's exec to its first answered STATUS."""
    start = time.perf_counter()
    agent.start(wait=False)
    agent.wait_ready(timeout=600)
    return time.perf_counter() - start


def floor_time(state: Path, count: int) -> float:
    out = subprocess.run([sys.executable, "-c", FLOOR, str(state)], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout.split()
    if int(out[0]) != count:
        raise SystemExit(f"bench-agent-restart: the floor read {out[0]} records, expected {count}")
    return float(out[1])


def bench(kubeconfig: Path, count: int, rounds: int) -> dict[str, Any]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    testing.ensure_crds(api)
    objects = testing.ClusterObjects(api, PREFIX)
    work = Path(tempfile.mkdtemp(prefix="mnr-bench-"))
    # One live namespace holds every recorded pod: 10,000 of them would cost the
    # machine more than the bench measures.
    space = f"{PREFIX}-bench-{os.getpid()}"
    testing.run("ip", "netns", "add", space)
    netns = f"/var/run/netns/{space}"
    try:
        node = objects.node()
        full, empty = testing.AgentProcess(work / "full", node, kubeconfig), testing.AgentProcess(work / "empty", node,
                                                                                                 kubeconfig)
        for agent in (full, empty):
            agent.state_dir.parent.mkdir(parents=True, exist_ok=True)
        store = StateStore(full.state_dir)
        log(f"writing {count} records")
        start = time.perf_counter()
        for i in range(count):
            store.write(record(i, netns))
        written = time.perf_counter() - start
        times: dict[str, list[float]] = {"full": [], "empty": [], "floor": []}
        for n in range(rounds):
            log(f"round {n + 1}/{rounds}")
            for name, agent in (("full", full), ("empty", empty)):
                times[name].append(ready_time(agent))
                agent.stop()
            times["floor"].append(floor_time(full.state_dir, count))
        kept = len(StateStore(full.state_dir).all())
        if kept != count:
            raise SystemExit(f"bench-agent-restart: {count - kept} of {count} records lost over {rounds} restarts")
        # The records are usable after the restart: DEL of a sample works from them alone.
        full.start()
        sample = [record(i, netns) for i in range(0, count, max(1, count // 20))]
        for r in sample:
            pod = (r.pod.namespace, r.pod.name, r.pod.uid)
            result = testing.invoke(testing.plugin_binary(), testing.cni_env("DEL", r.container_id, r.netns, pod=pod),
                                    full.conf())
            if result.exit != 0:
                raise SystemExit(f"bench-agent-restart: DEL of {r.container_id} after the restart: {result.out}")
        full.stop()
        left = len(StateStore(full.state_dir).all())
        if left != count - len(sample):
            raise SystemExit(f"bench-agent-restart: {left} records after {len(sample)} DELs of {count}")
        median = {k: round(statistics.median(v), 3) for k, v in times.items()}
        return {
            "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "load1": os.getloadavg()[0]},
            "records": count, "rounds": rounds, "write_s": round(written, 3),
            "ready_s": {k: {"median": median[k], "min": round(min(v), 3), "max": round(max(v), 3)}
                        for k, v in times.items()},
            "ready_over_empty": round(median["full"] / median["empty"], 2),
            "record_load_s": round(median["full"] - median["empty"], 3),
            "record_load_over_floor": round((median["full"] - median["empty"]) / median["floor"], 2),
            "records_kept": kept, "dels_after_restart": len(sample),
        }
    finally:
        objects.close()
        testing.run("ip", "netns", "del", space, check=False)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10000, help="attachment records on the node (default 10000)")
    parser.add_argument("--rounds", type=int, default=3, help="restarts measured (default 3)")
    parser.add_argument("--out", type=Path, default=Path("build/bench/agent-restart.json"))
    args = parser.parse_args()
    if args.records < 1 or args.rounds < 1:
        parser.error("--records and --rounds must be at least 1")
    with control_plane(log) as kubeconfig:
        report = bench(kubeconfig, args.records, args.rounds)
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
