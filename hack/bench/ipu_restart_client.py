"""The node's side of the IPU restart benchmark: the agent's datapath client
and sync loop of one source tree (this one, or a baseline's), run as a
process of its own with N entries desired. Prints "started" and the path of
its loop's module once its first round succeeded; stops when its stdin
closes.

Uses only what every revision's client has (P4RuntimeDatapath,
P4RuntimeClient, SyncLoop(datapath, desired, min_interval, resync_interval)),
so the same driver measures the tree before and after a change.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any


def routes(count: int) -> list[Any]:
    """`count` host routes on network 100 (blackholes: realized without any
    port or tunnel), as the compiled remote routes of a node are written."""
    from datapath.entries import ActionCall, Exact, entry, prefix

    return [entry("route", {"network_id": Exact(100), "dst": prefix(f"10.{64 + i // 65536}.{i // 256 % 256}."
                                                                     f"{i % 256}/32")}, ActionCall("drop"))
            for i in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tree", required=True, help="the source tree whose datapath client runs")
    parser.add_argument("--address", required=True)
    parser.add_argument("--entries", type=int, required=True)
    parser.add_argument("--resync", type=float, required=True, help="the loop's periodic resync (seconds)")
    args = parser.parse_args()
    sys.path.insert(0, args.tree)
    from datapath.client.datapath import P4RuntimeDatapath
    from datapath.client.p4rt import P4RuntimeClient
    from datapath.client.sync import SyncLoop

    from datapath.client import sync

    wanted = routes(args.entries)
    datapath = P4RuntimeDatapath(P4RuntimeClient(args.address))
    loop = SyncLoop(datapath, lambda: wanted, resync_interval=args.resync)  # the agent's rate limit (0.2 s)
    loop.start()
    while loop.rounds < 1 or loop.last_error is not None:  # connected and programmed: the period starts
        time.sleep(0.02)
    print("started", sync.__file__, flush=True)  # which tree's loop runs, for the bench to check
    sys.stdin.read()
    loop.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
