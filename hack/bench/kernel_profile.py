"""The kernel's share of a traffic run, from `perf record -a` (datapath_bench.py --perf).

Samples every CPU while a run goes on, then sums what `perf report` puts in
netfilter (nftables, conntrack, NAT hooks) and in the FIB (routes and policy
rules): what the pipeline adds to a path that has neither.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
# Kernel symbols of netfilter and of the FIB, by prefix.
NETFILTER = ("nf_", "__nf_", "nft_", "ipv4_conntrack", "ipv6_conntrack", "jhash")
FIB = ("fib_", "__fib_", "fib6_", "ip_route_input", "ip6_pol_route")
LINE = re.compile(r"^\s*([\d.]+)%\s+\[k\]\s+(\S+)")


def available() -> bool:
    return shutil.which("perf") is not None


@contextmanager
def recording(data: Path, seconds: float) -> Iterator[None]:
    """`perf record -a -g` for `seconds` (started as the block starts, waited for after it)."""
    data.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["perf", "record", "-a", "-g", "-o", str(data), "--", "sleep", str(seconds)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.wait(timeout=seconds + 60)


def shares(data: Path, top: int = 12) -> dict[str, Any]:
    """Percent of all samples (idle included) in netfilter, in the FIB, and the top symbols of both."""
    out = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "sym", "--stdio",
                          "-g", "none"], capture_output=True, text=True, check=True).stdout
    symbols = [(float(m[1]), m[2]) for line in out.splitlines() if (m := LINE.match(line))]
    netfilter = [(p, s) for p, s in symbols if s.startswith(NETFILTER)]
    fib = [(p, s) for p, s in symbols if s.startswith(FIB)]
    return {"netfilter_percent": round(sum(p for p, _ in netfilter), 2),
            "fib_percent": round(sum(p for p, _ in fib), 2),
            "idle_percent": round(sum(p for p, s in symbols if "halt" in s or s.startswith("cpuidle")), 2),
            "top": [{"symbol": s, "percent": p} for p, s in sorted(netfilter + fib, reverse=True)[:top]]}


def profiled(data: Path, seconds: float, run: Callable[[], T]) -> tuple[T, dict[str, Any]]:
    """`run()` under `perf record`, and the shares of its samples."""
    with recording(data, seconds):
        result = run()
    return result, shares(data)
