"""The datapath benchmark's counter reads at N Services (datapath_bench.py),
each beside its floor measured in the same run, medians of a few rounds,
wall time and CPU time (the CPU a step took, less sensitive than wall time
to other work on the machine):

  - the service table's direct counters over P4Runtime: entries with
    counter_data, and DirectCounterEntry reads (keys and counts only);
  - one scrape of the target's /metrics (and the target process's CPU time
    for it), with the target's own time in the kernel read (its
    multinet_ipu_counters_read_seconds), the series and bytes served;
floors:
  - nft: `nft -j list counters` and `nft -j list map` of the backends maps
    (reading through nft: it loads the whole table first);
  - netlink: the dumps the target asks the kernel for (the table's counter
    objects, each backends map), received and framed but not parsed;
  - rendering: prometheus_client's generate_latest of the very series the
    scrape returned, alone (the library's share of a scrape).
"""

from __future__ import annotations

import os
import resource
import statistics
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from datapath.client.datapath import P4RuntimeDatapath
from datapath.netns import call_in, run_in
from datapath.target.kernel import nftobj
from datapath.target.kernel.context import FAMILIES, nft_table

READ_GAUGE = "multinet_ipu_counters_read_seconds"


def _median(samples: list[tuple[float, float]]) -> dict[str, Any]:
    walls, cpus = [w for w, _ in samples], [c for _, c in samples]
    return {"seconds": round(statistics.median(walls), 3), "cpu_seconds": round(statistics.median(cpus), 3),
            "samples": [round(x, 3) for x in walls], "cpu_samples": [round(x, 3) for x in cpus]}


def _cpu(pid: int | None) -> float:
    """CPU seconds so far: of process `pid`, or of this process and its waited-for children."""
    if pid is not None:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _timed(fn: Callable[[], Any], pid: int | None = None) -> tuple[tuple[float, float], Any]:
    """(wall, CPU) seconds of fn(), and its result; the CPU of process `pid` when given."""
    wall, cpu = time.monotonic(), _cpu(pid)
    result = fn()
    return (time.monotonic() - wall, _cpu(pid) - cpu), result


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=600) as response:
        return str(response.read().decode())


def _gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise ValueError(f"/metrics has no {name}")


def netlink_dumps(ipu_ns: str, prefix: str) -> int:
    """The kernel reads a scrape makes, received but not parsed; returns the bytes received."""
    table = nft_table(prefix)
    requests = [(nftobj.NFT_MSG_GETOBJ, nftobj.counters_request(table))]
    requests += [(nftobj.NFT_MSG_GETSETELEM, nftobj.elements_request(table, f"backends{f.suffix}")) for f in FAMILIES]
    return call_in(ipu_ns, lambda: sum(len(p) for m, attrs in requests for p in nftobj.dump(m, attrs)))


def nft_lists(ipu_ns: str, prefix: str) -> int:
    """The same counters read through nft (JSON); returns the bytes nft printed."""
    table = nft_table(prefix)
    argvs = [["nft", "-j", "list", "counters", "table", "inet", table]]
    argvs += [["nft", "-j", "list", "map", "inet", table, f"backends{f.suffix}"] for f in FAMILIES]
    return sum(len(run_in(ipu_ns, argv, timeout=600).stdout) for argv in argvs)


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def rendering(text: str) -> Callable[[], bytes]:
    """generate_latest of the series in `text`, parsed beforehand (outside the timing)."""
    registry = CollectorRegistry()
    registry.register(_Families(list(text_string_to_metric_families(text))))
    return lambda: generate_latest(registry)


def bench_counters(dp: P4RuntimeDatapath, ipu_ns: str, prefix: str, metrics_url: str | None,
                   target_pid: int | None = None, rounds: int = 3) -> dict[str, Any]:
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in (
        "p4runtime_read", "direct_counter_read", "metrics_scrape", "floor_netlink_dumps", "floor_nft_json",
        "floor_prometheus_rendering")}
    kernel_read: list[float] = []
    out: dict[str, Any] = {}
    text = ""
    for _ in range(rounds):
        took, entries = _timed(lambda: dp.client.read_with_counters("service"), target_pid)
        samples["p4runtime_read"].append(took)
        out["entries_read"] = len(entries)
        took, counted = _timed(lambda: dp.client.read_counters("service"), target_pid)
        samples["direct_counter_read"].append(took)
        assert len(counted) == len(entries)
        took, out["netlink_bytes"] = _timed(lambda: netlink_dumps(ipu_ns, prefix))
        samples["floor_netlink_dumps"].append(took)
        took, out["nft_json_bytes"] = _timed(lambda: nft_lists(ipu_ns, prefix))
        samples["floor_nft_json"].append(took)
        if metrics_url:
            took, text = _timed(lambda: scrape(metrics_url), target_pid)
            samples["metrics_scrape"].append(took)
            kernel_read.append(_gauge(text, READ_GAUGE))
    if text:
        out["metrics_bytes"] = len(text)
        out["metrics_series"] = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        out["target_kernel_read_seconds"] = round(statistics.median(kernel_read), 3)
        render = rendering(text)
        for _ in range(rounds):
            samples["floor_prometheus_rendering"].append(_timed(render)[0])
    for name, values in samples.items():
        if values:
            out[name] = _median(values)
    return out
