"""The route Write benchmark behind hack/bench/routes (see there)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the test rig lives in tests/support, not in the shipped packages

import datapath_floors as floors  # noqa: E402  (this directory, sys.path[0] of a script run here)
from bench_common import export, write_report  # noqa: E402
from datapath.client.datapath import P4RuntimeDatapath  # noqa: E402
from datapath.client.p4rt import P4RuntimeClient, wait_for  # noqa: E402
from datapath.pipeline import pipeline  # noqa: E402
from datapath.target.kernel.context import TABLE_BASE  # noqa: E402
from tests.datapath.conftest import free_port  # noqa: E402
from tests.support.testbed import Node, Pod, Testbed, start_target  # noqa: E402

NET_ID = 7


def log(msg: str) -> None:
    print(f"bench-routes: {msg}", file=sys.stderr, flush=True)


def one_round(node: Node, router: Pod, tree: Path, count: int, prefix: str, logs: Path) -> dict[str, Any]:
    """A fresh target of `tree`, the router's port attached, then the Write of
    `count` routes and its delete, and the kernel floor (datapath_floors.routes)."""
    sizes = {"route": count + 1024}
    target = start_target(node, free_port(), prefix, str(logs / "ipu.log"), sys.executable, sizes, tree=str(tree))
    try:
        wait_for(target.address, timeout=300)
        dp = P4RuntimeDatapath(P4RuntimeClient(target.address, pipeline=pipeline(sizes)))
        dp.reconnect()
        dp.attach(router.attachment)
        figures = floors.routes(dp, router, NET_ID, count, prefix, check=realized(node, count))
        dp.client.close()
        return figures
    finally:
        target.stop()


def realized(node: Node, count: int) -> Callable[[], None]:
    """A check run right after the insert Write: every route in the network's table."""
    def check() -> None:
        out = subprocess.run(["ip", "-n", node.ipu_ns, "-4", "route", "show", "table", str(TABLE_BASE + NET_ID)],
                             capture_output=True, text=True, check=True).stdout
        found = sum(1 for line in out.splitlines() if line.startswith("10.") and " dev " in line)
        if found < count:
            raise SystemExit(f"bench-routes: {found} of {count} routes in the kernel after the Write")
    return check


def spread(values: list[float]) -> list[float]:
    return [round(min(values), 3), round(statistics.median(values), 3), round(max(values), 3)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000", help="routes per Write, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default="main", help="git revision measured as before (default main)")
    parser.add_argument("--baseline-max", type=int, default=10000,
                        help="the largest size the baseline runs (default %(default)s)")
    parser.add_argument("--prefix", default="mnrw", help="of the namespaces and links made (<= 6 characters)")
    parser.add_argument("--out", type=Path, default=ROOT / "build/bench/routes.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    report: dict[str, Any] = {"load_average_at_start": list(os.getloadavg()), "cpus": os.cpu_count(),
                              "rounds": args.rounds, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        baseline, commit = export(args.baseline, Path(tmp))
        report["before"] = f"{args.baseline} ({commit})"
        report["after"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                         text=True, check=True).stdout.strip()
        tb = Testbed(args.prefix)
        try:
            node = tb.add_node("n1")
            router = tb.add_pod(node, "router", NET_ID, "10.50.0.9/16")
            for count in sizes:
                trees = {"after": ROOT} | ({"before": baseline} if count <= args.baseline_max else {})
                runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in trees}
                for r in range(args.rounds):  # the trees alternate round by round: load hits both alike
                    for mode, tree in trees.items():
                        log(f"{count} routes, round {r + 1}/{args.rounds}: {mode}")
                        runs[mode].append(one_round(node, router, tree, count, args.prefix, Path(tmp)))
                report["sizes"][str(count)] = summary(runs)
        finally:
            tb.close()
    report["load_average_at_end"] = list(os.getloadavg())
    write_report(report, args.out)
    return 0


def summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    floor = [r["kernel_entries_per_second"] for rs in runs.values() for r in rs]
    out["kernel_ip_batch_entries_per_second"] = spread(floor)
    for mode, rs in runs.items():
        rate = [r["entries_per_second"] for r in rs]
        out[mode] = {"entries_per_second": spread(rate),
                     "write_seconds": spread([r["write_seconds"] for r in rs]),
                     "delete_write_seconds": spread([r["delete_write_seconds"] for r in rs]),
                     "ratio_to_kernel": spread([r["ratio_to_kernel"] for r in rs])}
    if "before" in runs:
        out["after_over_before"] = spread([a["entries_per_second"] / b["entries_per_second"]
                                           for a, b in zip(runs["after"], runs["before"])])
    return out


if __name__ == "__main__":
    sys.exit(main())
