"""One endpoint change along the agent's path, step by step, two ways in one run.

  - from scratch (the peer: what the agent did before it compiled
    incrementally): `compile_node` of every object, the whole desired state
    diffed against what the target holds, the Write;
  - incremental (what the agent does): `NodeCompiler.apply` of the changes
    the caches' events reported since its last round (the peer's change and
    its own), `P4RuntimeDatapath.replace_state` of its CompiledState (the
    diff over the changed keys), the Write.

Rounds alternate, each changing one endpoint of another Service (the slice's
dict replaced, as the agent's cache does on a watch event); both write to the
same target. Each step is timed, and the target's own time in Write (decode,
realize, nft) is read from its /metrics. Medians with min and max.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

from agent.compile import NodeCompiler, compile_node, network_ids
from agent.compile.objects import key_of
from datapath.client.datapath import P4RuntimeDatapath
from datapath.client.p4rt import diff
from datapath_floors import write_seconds

Obj = dict[str, Any]


def endpoint_changes(dp: P4RuntimeDatapath, node: str, listings: dict[str, list[Obj]], rounds: int,
                     metrics_url: str | None) -> dict[str, Any]:
    """`listings`: the compiler's inputs as the agent's caches hold them (the
    Services and their slices are already programmed through `dp`)."""
    compiler = NodeCompiler(node)
    dp.replace_state(compiler.compile(**listings))  # the incremental side's starting point
    samples: dict[str, list[dict[str, float]]] = {"from_scratch": [], "incremental": []}
    slices = listings["slices"]
    events: dict[tuple[str, str], Obj] = {}  # the changes the agent's caches reported since the compiler's last round
    for i in range(rounds):
        for way, step in (("from_scratch", _from_scratch), ("incremental", _incremental)):
            at = (len(slices) // 2 + 7919 * (2 * i + (way == "incremental"))) % len(slices)
            slices[at] = _moved(slices[at], i)
            events[key_of(slices[at])] = slices[at]
            before = write_seconds(metrics_url)
            timing = step(dp, node, listings, compiler, events)
            after = write_seconds(metrics_url)
            if before is not None and after is not None:
                timing["target_write_seconds"] = after - before
            samples[way].append(timing)
    out: dict[str, Any] = {way: _summary(rounds_) for way, rounds_ in samples.items()}
    out["rounds"] = rounds
    out["ratio_total_incremental_to_from_scratch"] = round(
        out["incremental"]["total_seconds"] / out["from_scratch"]["total_seconds"], 4)
    return out


def _moved(endpoint_slice: Obj, i: int) -> Obj:
    """The slice with its first endpoint moved: a new dict, as a watch event brings."""
    new = copy.deepcopy(endpoint_slice)
    new["endpoints"][0]["addresses"] = [f"10.201.{i // 250}.{i % 250 + 1}"]
    return new


def _from_scratch(dp: P4RuntimeDatapath, node: str, listings: dict[str, list[Obj]],
                  compiler: NodeCompiler, events: dict[tuple[str, str], Obj]) -> dict[str, float]:
    t0 = time.monotonic()
    entries = compile_node(node, networks=network_ids(listings["pods"]), **listings)
    t1 = time.monotonic()
    with dp.lock:  # P4RuntimeDatapath's whole diff, split into its steps
        want = dict(dp._ports_map())
        want.update((e.key, e) for e in entries)
        updates = diff(dp.installed, want)
        t2 = time.monotonic()
        dp.client.write(updates)
        dp.installed = want  # the incremental side's next delta is diffed against this
    t3 = time.monotonic()
    return {"updates": len(updates), "compile_seconds": t1 - t0, "diff_seconds": t2 - t1,
            "write_seconds": t3 - t2, "total_seconds": t3 - t0}


def _incremental(dp: P4RuntimeDatapath, node: str, listings: dict[str, list[Obj]],
                 compiler: NodeCompiler, events: dict[tuple[str, str], Obj]) -> dict[str, float]:
    written: list[float] = []
    write = dp.client.write
    dp.client.write = _timed(write, written)  # type: ignore[method-assign]
    try:
        t0 = time.monotonic()
        state = compiler.apply({"slices": dict(events)})
        events.clear()
        t1 = time.monotonic()
        updates = dp.replace_state(state)
        t2 = time.monotonic()
    finally:
        dp.client.write = write  # type: ignore[method-assign]
    spent = sum(written)
    return {"updates": updates, "changed_keys": len(state.changed), "compile_seconds": t1 - t0,
            "diff_seconds": t2 - t1 - spent, "write_seconds": spent, "total_seconds": t2 - t0}


def _timed(call: Callable[..., None], into: list[float]) -> Callable[..., None]:
    def timed(*args: Any, **kwargs: Any) -> None:
        start = time.monotonic()
        try:
            call(*args, **kwargs)
        finally:
            into.append(time.monotonic() - start)
    return timed


def _summary(rounds: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in rounds[0]:
        values = [r[name] for r in rounds]
        if name in ("updates", "changed_keys"):
            out[name] = values
            continue
        out[name] = round(statistics.median(values), 4)
        out[f"{name}_spread"] = [round(min(values), 4), round(statistics.median(values), 4), round(max(values), 4)]
    return out
