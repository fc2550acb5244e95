"""The IPU restart benchmark behind hack/bench/ipu-restart (see there)."""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the test rig lives in tests/support, not in the shipped packages

import grpc  # noqa: E402
from finsy.proto import p4r  # noqa: E402

from bench_common import export, write_report  # noqa: E402  (this directory, sys.path[0] of a script run here)
from datapath.client.p4rt import INSERT, P4RuntimeClient  # noqa: E402
from datapath.entries import Entry, encode  # noqa: E402
from ipu_restart_client import routes  # noqa: E402
from tests.support.testbed import Node, Target, Testbed, start_target  # noqa: E402

CLIENT = Path(__file__).with_name("ipu_restart_client.py")


def log(msg: str) -> None:
    print(f"bench-ipu-restart: {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Probe:
    """Reads the target as an outside observer: when it first answers, and
    when its tables equal the desired state. A one-entry Read of the last
    desired entry is cheap and, as Reads see tables only between Write
    batches, present only once the batch holding it is applied; the whole
    tables are then read and compared."""

    def __init__(self, address: str, desired: list[Entry]) -> None:
        self.address, self.want = address, {e.key: e for e in desired}
        self.last = p4r.ReadRequest(device_id=1)
        self.last.entities.add().table_entry.CopyFrom(encode(desired[-1]))
        self.last.entities[0].table_entry.ClearField("action")

    def wait(self, since: float, timeout: float) -> dict[str, float]:
        answered: float | None = None
        client = P4RuntimeClient(self.address)
        deadline = since + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    client.open(timeout=0.05)
                except grpc.FutureTimeoutError:
                    continue
                answered = answered if answered is not None else time.monotonic()
                if self._equal(client):
                    return {"answered_s": answered - since, "equal_s": time.monotonic() - since}
                time.sleep(0.02)
        finally:
            client.close()
        raise TimeoutError(f"the target's tables were not the desired state within {timeout} s")

    def _equal(self, client: P4RuntimeClient) -> bool:
        try:
            if not any(r.entities for r in client._stub().Read(self.last)):
                return False
            return {e.key: e for e in client.read()} == self.want
        except grpc.RpcError:
            return False  # no pipeline yet (FAILED_PRECONDITION), or gone again


@contextmanager
def driver(tree: Path, address: str, entries: int, resync: float) -> Iterator[None]:
    """The datapath client of `tree` as a process, its loop running."""
    proc = subprocess.Popen([sys.executable, str(CLIENT), "--tree", str(tree), "--address", address,
                             "--entries", str(entries), "--resync", str(resync)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        word, _, module = proc.stdout.readline().strip().partition(" ")
        if word != "started" or not Path(module).resolve().is_relative_to(tree.resolve()):
            raise RuntimeError(f"the client of {tree} did not start (its loop: {module or 'none'})")
        yield
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def restart(target: Target, prefix: str, logs: Path) -> tuple[Target, float]:
    """SIGKILL the target by its pid and start it again on the same address; the new one and its start time."""
    os.kill(target.process.pid, signal.SIGKILL)
    target.process.wait()
    port = int(target.address.rsplit(":", 1)[1])
    start = time.monotonic()
    return start_target(target.node, port, prefix, str(logs / "ipu.log"), sys.executable), start


def floor_client(address: str, desired: list[Entry], since: float, timeout: float) -> dict[str, float]:
    """The least any controller can do: dial the restarted target every 10 ms,
    arbitrate, push the pipeline and every entry in one Write."""
    client = P4RuntimeClient(address)
    try:
        while True:
            try:
                client.connect(timeout=0.01)
                break
            except (grpc.FutureTimeoutError, grpc.RpcError, TimeoutError):
                if time.monotonic() > since + timeout:
                    raise
        answered = time.monotonic()
        client.set_pipeline()
        client.write([(INSERT, e) for e in desired])
        done = time.monotonic()
        assert {e.key: e for e in client.read()} == {e.key: e for e in desired}, "the floor's write did not hold"
        return {"answered_s": answered - since, "equal_s": done - since}
    finally:
        client.close()


def measure(mode: str, target: Target, desired: list[Entry], args: argparse.Namespace, tree: Path | None,
            logs: Path) -> tuple[Target, dict[str, float]]:
    """One restart of the target with the client of `mode` on the node; the target now running and the times."""
    probe = Probe(target.address, desired)
    if tree is None:  # the floor: the target starts empty, the bench programs it itself
        target, start = restart(target, args.prefix, logs)
        return target, floor_client(target.address, desired, start, args.timeout)
    with driver(tree, target.address, len(desired), args.resync):  # connected and programmed
        # The restart comes at a random moment of the loop's resync period.
        pause = random.uniform(0, args.resync if mode == "before" else 1.0)
        time.sleep(pause)
        target, start = restart(target, args.prefix, logs)
        times = probe.wait(start, args.timeout)
    return target, {**times, "pause_s": pause}


def summary(samples: list[dict[str, float]]) -> dict[str, Any]:
    return {"median_equal_s": statistics.median(s["equal_s"] for s in samples),
            "max_equal_s": max(s["equal_s"] for s in samples),
            "median_answered_s": statistics.median(s["answered_s"] for s in samples), "samples": samples}


def bench(node: Node, args: argparse.Namespace, trees: dict[str, Path | None], logs: Path) -> dict[str, Any]:
    target = start_target(node, args.port, args.prefix, str(logs / "ipu.log"), sys.executable)
    out: dict[str, Any] = {}
    try:
        for count in args.entries:
            desired = routes(count)
            results: dict[str, list[dict[str, float]]] = {mode: [] for mode in trees}
            for r in range(args.rounds):
                for mode, tree in trees.items():  # modes alternate round by round: load hits all alike
                    log(f"{count} entries, round {r + 1}/{args.rounds}: {mode}")
                    target, times = measure(mode, target, desired, args, tree, logs)
                    results[mode].append(times)
            out[str(count)] = {mode: summary(samples) for mode, samples in results.items()}
    finally:
        target.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=lambda s: [int(n) for n in s.split(",")], default=[1000, 10000],
                        help="desired entries, comma-separated (default 1000,10000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--resync", type=float, default=60.0,
                        help="the loop's periodic resync in seconds (default 60, the agent's)")
    parser.add_argument("--baseline", default="main", help="the git revision measured as before (default main)")
    parser.add_argument("--timeout", type=float, default=300.0, help="for one restart to be repaired")
    parser.add_argument("--prefix", default=os.environ.get("MULTINET_TEST_NETNS_PREFIX") or "mnib",
                        help="of every namespace, link and table made (<= 6 characters)")
    parser.add_argument("--out", type=Path, default=Path("build/bench/ipu-restart.json"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: creates network namespaces")
    testbed = Testbed(args.prefix)
    with tempfile.TemporaryDirectory(prefix=f"{args.prefix}-bench-") as tmp:
        baseline, commit = export(args.baseline, Path(tmp))
        trees: dict[str, Path | None] = {"floor": None, "after": ROOT, "before": baseline}
        args.port = free_port()
        try:
            node = testbed.add_node("n1")
            results = bench(node, args, trees, Path(tmp))
            report = {"what": "seconds from the IPU target's process start (after a SIGKILL) until its tables, "
                              "read over P4Runtime, equal the node's desired state",
                      "before": f"{args.baseline} ({commit}): its sync loop, periodic resync {args.resync} s, "
                                "no other wake (an idle node)",
                      "after": f"this tree ({_head()}): the same loop, woken by the lost stream",
                      "floor": "a client dialling every 10 ms, then the pipeline and one Write of every entry",
                      "cpus": os.cpu_count(), "load_average_at_start": list(os.getloadavg()),
                      "results": results}
        finally:
            testbed.close()
    write_report(report, args.out)
    return _check(results)


def _head() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _check(results: dict[str, Any]) -> int:
    """Exits non-zero when the change did not beat the baseline at some size."""
    worse: Callable[[dict[str, Any]], bool] = lambda r: r["after"]["median_equal_s"] >= r["before"]["median_equal_s"]
    bad = [size for size, r in results.items() if worse(r)]
    if bad:
        log(f"after is not faster than before at {bad} entries")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
