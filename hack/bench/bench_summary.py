"""The benchmarks' figures against the performance goals, from their JSON reports.

Reads the reports hack/bench/* wrote into a directory (default build/bench) and prints a Markdown table, one
row per goal (measure | now | peer or floor (same run) | ratio | goal | met?); writes the rows as JSON (default
DIR/summary.json), each with the keys it read, its report and that file's mtime. Every figure is one a
benchmark wrote, beside its peer or floor of the same run. An absent report gives its rows "not run"; a figure
a report lacks (its run's flags left it out), "not measured". The reports' mtimes and their span are listed,
so a summary of different runs says so; --since marks the rows of reports older than a moment (hack/bench/all
passes its start). Exits non-zero only when a report is unreadable or malformed (naming the file and key).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ("cni", "controller", "datapath", "routes", "nodes", "agent-restart", "ipu-restart")


class Malformed(Exception):
    """A report's key is missing or not what its benchmark writes."""


class NotMeasured(Exception):
    """The report exists but holds no such figure (the run's flags left it out)."""


class Report:
    """One JSON report, and lookups whose errors name the file and the key."""

    def __init__(self, path: Path, data: Any) -> None:
        self.path, self.data = path, data
        self.keys: list[str] = []  # every key read, for the row being filled

    def find(self, *keys: str | int) -> Any:
        """The value at `keys`, or None when a key on the way is absent."""
        value = self.data
        for key in keys:
            if isinstance(key, int) and isinstance(value, list) and -len(value) <= key < len(value):
                value = value[key]
            elif isinstance(key, str) and isinstance(value, dict) and key in value:
                value = value[key]
            else:
                return None
        return value

    def get(self, *keys: str | int) -> Any:
        name = ".".join(str(k) for k in keys)
        value = self.find(*keys)
        if value is None:
            raise Malformed(f"{self.path}: key {name}: missing (or null)")
        self.keys.append(name)
        return value

    def num(self, *keys: str | int) -> float:
        value = self.get(*keys)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Malformed(f"{self.path}: key {'.'.join(str(k) for k in keys)}: {value!r} is not a number")
        return float(value)

    def spread(self, *keys: str | int) -> tuple[float, float, float]:
        """A benchmark's min/median/max: a {min, median, max} dict or a [min, median, max] list."""
        if isinstance(self.find(*keys), list):
            return self.num(*keys, 0), self.num(*keys, 1), self.num(*keys, 2)
        return self.num(*keys, "min"), self.num(*keys, "median"), self.num(*keys, "max")

    def need(self, reason: str, *keys: str | int) -> None:
        if self.find(*keys) is None:
            raise NotMeasured(reason)


@dataclass(frozen=True)
class Goal:
    op: str  # "<=", ">=" or "=="
    limit: float
    unit: str = ""

    def met(self, value: float) -> bool:
        return {"<=": value <= self.limit, ">=": value >= self.limit, "==": value == self.limit}[self.op]


@dataclass
class Figures:
    now: str
    peer: str
    ratio: str
    value: float | None  # what the goal is checked against (the ratio or the figure itself)
    note: str = ""


@dataclass
class Row:
    measure: str
    report: str  # its JSON's name, file and mtime
    file: str
    mtime: str | None
    stale: bool  # the file is older than --since
    goal: str
    met: str = "-"
    status: str = "ok"  # ok, not run, not measured, malformed
    figures: Figures = field(default_factory=lambda: Figures("", "", "", None))
    keys: list[str] = field(default_factory=list)


Fill = Callable[[Report], Figures]


def fmt(x: float) -> str:
    return f"{x:,.0f}" if math.isfinite(x) and (abs(x) >= 100 or x == int(x)) else f"{x:.3g}"


def fmt_spread(s: tuple[float, float, float]) -> str:
    return f"{fmt(s[1])} ({fmt(s[0])}-{fmt(s[2])})"


# --- cni.json: cni_bench.py's report_of() under secondaries_<n>, per-round min/median/max
def cni(n: int, verb: str, q: str, other: str) -> Fill:
    """multinet's <verb> <q> over <other>'s: the reference (the floor), the peer (Multus +
    Whereabouts), or its own p50 (the tail)."""
    def fill(r: Report) -> Figures:
        sec = f"secondaries_{n}"
        r.need(f"no {sec} in cni.json (--secondaries)", sec)
        if other == "peer":
            r.need("no peer: Multus + Whereabouts not built (hack/bench/cni-peer)", sec, "peer")
        key, them = (f"multinet_{verb}_p99_over_p50", ("multinet", "p50")) if other == "own" else \
            (f"{verb}_{q}_vs_{other}", (other, q))
        ratio = r.spread(sec, "ratios", key)
        now, theirs = (r.num(sec, who, verb, f"{which}_ms", "median") for who, which in (("multinet", q), them))
        return Figures(f"{q} {fmt(now)} ms", f"{other} {them[1]} {fmt(theirs)} ms", fmt_spread(ratio), ratio[1])
    return fill


# --- cni.json: cni_e2e.py's bench_e2e() under end_to_end_<n>
def cni_e2e(n: int, q: str) -> Fill:
    """Pod create to ADD's return, multinet (its controller's allocation included) over the peer."""
    def fill(r: Report) -> Figures:
        sec = f"end_to_end_{n}"
        r.need(f"no {sec} in cni.json (--e2e off, or the peer not built)", sec)
        ratio = r.spread(sec, "ratios", f"e2e_{q}_vs_peer")
        now, theirs = (r.num(sec, who, f"{q}_ms", "median") for who in ("multinet_e2e", "peer_e2e"))
        return Figures(f"{q} {fmt(now)} ms", f"peer {q} {fmt(theirs)} ms", fmt_spread(ratio), ratio[1])
    return fill


# --- datapath.json: datapath_bench.py (programming, routes, policy, flood)
def services_note(r: Report) -> str:
    count = r.num("programming", "services")
    return "" if count == 10000 else f"measured at {fmt(count)} Services"


def programming(total: bool) -> Fill:
    """Program / floor (the goal on the ratio), or compile + program (the goal on the seconds)."""
    def fill(r: Report) -> Figures:
        floor = r.num("programming", "kernel_floor", "nft_load_seconds")
        ratio = r.num("programming", "ratio_total_to_nft_load" if total else "ratio_program_to_nft_load")
        seconds = r.num("programming", "total_seconds" if total else "program_seconds")
        also = f" (compile {fmt(r.num('programming', 'compile_seconds'))} s)" if total else ""
        return Figures(f"{fmt(seconds)} s{also}", f"nft -f {fmt(floor)} s", fmt(ratio), seconds if total else ratio,
                       services_note(r))
    return fill


def endpoint_change(r: Report) -> Figures:
    way = ("programming", "endpoint_change")
    now = r.num(*way, "incremental", "total_seconds") * 1000
    scratch = r.num(*way, "from_scratch", "total_seconds") * 1000
    return Figures(f"{fmt(now)} ms", f"from scratch {fmt(scratch)} ms",
                   fmt(r.num(*way, "ratio_total_incremental_to_from_scratch")), now)


def datapath_routes(r: Report) -> Figures:
    rate, floor = r.num("routes", "entries_per_second"), r.num("routes", "kernel_entries_per_second")
    count = r.num("routes", "routes")
    return Figures(f"{fmt(rate)}/s", f"ip -batch {fmt(floor)}/s", fmt(r.num("routes", "ratio_to_kernel")), rate,
                   "" if count == 100000 else f"measured at {fmt(count)} routes")


def target_memory(section: str, key: str, what: str) -> Fill:
    """The IPU target's RSS with `what` programmed, beside the idle target's of the same run."""
    def fill(r: Report) -> Figures:
        r.need(f"no {section}.{key} (a run before the datapath bench measured memory, or --skip-traffic)",
               section, key)
        rss, idle = r.num(section, key, "ipu_target_rss_mib"), r.num("ipu_target_rss_mib_idle", 0)
        driver = r.num(section, key, "driver_rss_mib")
        return Figures(f"{fmt(rss)} MiB with {what}",
                       f"idle {fmt(idle)} MiB; the driving compile + client {fmt(driver)} MiB", "-", rss)
    return fill


def traffic(section: str, ratio_key: str, now_key: str, label: str, peer_key: str) -> Fill:
    """A throughput ratio of `section`, beside the policy section's `peer_key` (iperf3 medians)."""
    def fill(r: Report) -> Figures:
        r.need("no traffic runs (--skip-traffic)", section)
        ratio, other = r.num(section, ratio_key), r.num("policy", peer_key)
        return Figures(f"{fmt(r.num(section, now_key))} Gbit/s", f"{label} {fmt(other)} Gbit/s", fmt(ratio), ratio)
    return fill


# --- routes.json: route_write_bench.py's summary() under sizes."100000", [min, median, max]
def routes_write(r: Report) -> Figures:
    size = ("sizes", "100000")
    r.need("no 100,000-route size in routes.json (--sizes)", *size)
    rate, floor = r.spread(*size, "after", "entries_per_second"), r.spread(*size, "kernel_ip_batch_entries_per_second")
    return Figures(f"{fmt(rate[1])}/s ({fmt(rate[0])}-{fmt(rate[2])})", f"ip -batch {fmt(floor[1])}/s",
                   fmt_spread(r.spread(*size, "after", "ratio_to_kernel")), rate[1])


# --- controller.json: controller_bench.py's Bench.run()
def controller(key: tuple[str, ...], unit: str, also: tuple[str, ...] = ()) -> Fill:
    """A figure of the run (`also` beside it); the rate beside its floor (no controller) where written."""
    def fill(r: Report) -> Figures:
        pods, nets, done = r.num("pods"), r.num("networks_per_pod"), r.num("pods_completed")
        notes = [] if (pods, nets) == (1000, 3) else [f"{fmt(pods)} pods x {fmt(nets)} networks, not 1,000 x 3"]
        notes += [] if done == pods else [f"only {fmt(done)} of {fmt(pods)} pods completed"]
        if key[0] in r.data and r.data[key[0]] is None:
            raise NotMeasured(f"{key[0]} is null: no pod completed")
        value = r.num(*key)
        beside = f" ({also[-1]} {fmt(r.num(*also))}{unit})" if also else ""
        floor = key == ("pods_per_second",) and r.find("floor_no_controller") is not None
        peer = f"no controller {fmt(r.num('floor_no_controller', 'pods_per_second'))}{unit}" if floor else "-"
        return Figures(f"{fmt(value)}{unit}{beside}", peer, fmt(r.num("ratio_to_floor")) if floor else "-", value,
                       "; ".join(notes))
    return fill


# --- nodes.json: nodes_bench.py's bench()
def nodes_ready(r: Report) -> Figures:
    runs = r.get("pods")
    if not isinstance(runs, list):
        raise Malformed(f"{r.path}: key pods: not a list")
    p50: dict[int, float] = {}
    for i, run in enumerate(runs):  # the multinet runs with 0 and 3 secondary networks
        if isinstance(run, dict) and str(run.get("cni", "")).startswith("multinet"):
            p50[int(r.num("pods", i, "one_by_one", "secondary_networks"))] = \
                r.num("pods", i, "one_by_one", "create_to_ready", "p50_s")
    if 0 not in p50 or 3 not in p50:
        raise Malformed(f"{r.path}: key pods: no multinet run with 0 and with 3 secondary networks")
    ratio = r.num("p50_ratio_3_networks_vs_0_one_by_one")
    pair = r.spread("pairwise_ratio_3_networks_vs_0_one_by_one")
    return Figures(f"p50 {fmt(p50[3])} s", f"0 networks p50 {fmt(p50[0])} s",
                   f"{fmt(ratio)}; pairwise {fmt_spread(pair)}", ratio)


def rss(kind: str, container: str) -> Fill:
    """The RSS of multinet's <kind> containers (pods multinet-<kind>-*, container <container>), per node."""
    def fill(r: Report) -> Figures:
        def parts(key: str) -> list[float]:
            found = r.find(key)
            if not isinstance(found, dict):
                raise Malformed(f"{r.path}: key {key}: missing or not an object")
            names = sorted(k for k in found if k.startswith(f"multinet-{kind}-") and k.endswith(f"/{container}"))
            return [r.num(key, k) for k in names]
        busy, idle = parts("memory_mib_with_pods"), parts("memory_mib_idle")
        if not busy:
            raise NotMeasured(f"no multinet-{kind}-*/{container} in memory_mib_with_pods")
        return Figures(f"{', '.join(fmt(x) for x in busy)} MiB, pods up", f"idle {', '.join(fmt(x) for x in idle)} MiB",
                       "-", max(busy))
    return fill


# --- agent-restart.json, ipu-restart.json: no goal in the list; their figures, for the record
def agent_restart(r: Report) -> Figures:
    full, empty = r.num("ready_s", "full", "median"), r.num("ready_s", "empty", "median")
    return Figures(f"{fmt(full)} s, {fmt(r.num('records'))} records", f"empty agent {fmt(empty)} s",
                   fmt(r.num("ready_over_empty")), None)


def ipu_restart(r: Report) -> Figures:
    r.need("no 10,000-entry size in ipu-restart.json (--entries)", "results", "10000")
    after, floor = (r.num("results", "10000", mode, "median_equal_s") for mode in ("after", "floor"))
    before = r.num("results", "10000", "before", "median_equal_s")
    return Figures(f"{fmt(after)} s (before {fmt(before)} s)", f"floor {fmt(floor)} s", "-", None)


LE, GE = "<=", ">="
CNI: list[tuple[str, Goal, str, str, str]] = [  # label, goal, verb, quantile, other
    ("CNI ADD p50 / reference (bridge + host-local)", Goal(LE, 0.5), "add", "p50", "reference"),
    ("CNI DEL p50 / reference", Goal(LE, 0.2), "del", "p50", "reference"),
    ("CNI ADD p50 / peer (Multus + Whereabouts)", Goal(LE, 0.33), "add", "p50", "peer"),
    ("CNI ADD p99 / peer's p99", Goal(LE, 0.33), "add", "p99", "peer"),
    ("CNI DEL p50 / peer", Goal(LE, 0.33), "del", "p50", "peer"),
    ("CNI ADD p99 / p50 (own tail)", Goal(LE, 1.5), "add", "p99", "own")]
SPECS: list[tuple[str, str, Goal | None, Fill]] = [
    *((f"{label}, {n} net{'s' * (n > 1)}", "cni", goal, cni(n, verb, q, other))
      for label, goal, verb, q, other in CNI for n in (1, 3)),
    *((f"CNI pod create to ADD's return (allocation included) {q} / peer, {n} net{'s' * (n > 1)}", "cni",
       Goal(LE, 0.33), cni_e2e(n, q)) for q in ("p50", "p99") for n in (1, 3)),
    ("10,000 Services: program / nft -f floor", "datapath", Goal(LE, 1.5), programming(False)),
    ("10,000 Services: compile + program", "datapath", Goal(LE, 2, " s"), programming(True)),
    ("one endpoint change (incremental, to the kernel)", "datapath", Goal(LE, 50, " ms"), endpoint_change),
    ("100,000 routes, one Write (datapath run)", "datapath", Goal(GE, 150000, "/s"), datapath_routes),
    ("100,000 routes, one Write (routes run)", "routes", Goal(GE, 150000, "/s"), routes_write),
    ("TCP through the IPU / bare VXLAN", "datapath", Goal(GE, 0.9), traffic(
        "policy", "ratio_pipeline_to_bare_vxlan", "throughput_no_policy_gbps", "bare", "throughput_bare_vxlan_gbps")),
    ("TCP through the IPU / bare VXLAN with conntrack alone", "datapath", None, traffic(
        "policy", "ratio_pipeline_to_bare_vxlan_conntrack", "throughput_no_policy_gbps", "bare + conntrack",
        "throughput_bare_vxlan_conntrack_gbps")),
    ("TCP with a 10,000-peer policy / without", "datapath", Goal(GE, 0.95), traffic(
        "policy", "ratio_with_policy", "throughput_with_policy_gbps", "no policy", "throughput_no_policy_gbps")),
    ("legitimate flow under a denied flood / quiet", "datapath", Goal(GE, 0.95), traffic(
        "flood", "ratio_to_quiet", "throughput_under_flood_gbps", "quiet", "throughput_with_policy_gbps")),
    ("controller, 1,000 pods x 3 nets: rate", "controller", Goal(GE, 50), controller(("pods_per_second",), " pods/s")),
    ("controller: per-pod latency p99", "controller", Goal(LE, 2, " s"),
     controller(("latency_seconds", "p99"), " s", ("latency_seconds", "p50"))),
    ("controller: address conflicts", "controller", Goal("==", 0), controller(("address_conflicts",), "")),
    ("pod create-to-Ready p50, 3 nets / 0 nets, one by one", "nodes", Goal(LE, 1.25), nodes_ready),
    ("RSS of the IPU target, 10,000 Services x 10 endpoints", "datapath", None,
     target_memory("programming", "memory_at_services", "10,000 Services")),
    ("RSS of the IPU target, a 10,000-peer policy", "datapath", None,
     target_memory("policy", "memory_at_peers", "10,000 peers")),
    ("RSS of the agent (per node)", "nodes", None, rss("node", "agent")),
    ("RSS of the IPU target (per node)", "nodes", None, rss("ipu", "ipu")),
    ("agent restart, ready with 10,000 records / empty agent", "agent-restart", None, agent_restart),
    ("IPU restart, 10,000 entries: seconds to repaired tables", "ipu-restart", None, ipu_restart),
]


def load(path: Path) -> Report:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:  # ValueError: not UTF-8, or not JSON
        raise Malformed(f"{path}: unreadable or not JSON: {err}") from err
    if not isinstance(data, dict):
        raise Malformed(f"{path}: key (top level): not an object")
    return Report(path, data)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def build(directory: Path, since: float | None) -> tuple[list[Row], dict[str, Any], list[str]]:
    reports: dict[str, Report | None] = {}
    sources: dict[str, Any] = {}
    errors: list[str] = []
    for name in REPORTS:
        path = directory / f"{name}.json"
        reports[name] = None
        if path.exists():
            try:
                reports[name] = load(path)
            except Malformed as err:
                errors.append(str(err))
        mtime = path.stat().st_mtime if path.exists() else None
        sources[name] = {"file": str(path), "present": mtime is not None, "mtime": iso(mtime) if mtime else None,
                         "mtime_epoch": mtime, "stale": bool(mtime and since and mtime < since)}
    rows: list[Row] = []
    for measure, name, goal, fill in SPECS:
        src = sources[name]
        row = Row(measure, name, src["file"], src["mtime"], src["stale"],
                  f"{goal.op} {fmt(goal.limit)}{goal.unit}" if goal else "none given")
        report = reports[name]
        if not src["present"]:
            row.status, row.figures.now = "not run", f"not run (no {name}.json)"
        elif report is None:
            row.status, row.figures.now = "malformed", f"malformed {name}.json"
        else:
            report.keys = []
            try:
                got = row.figures = fill(report)
                row.measure = f"{measure} [{got.note}]" if got.note else measure
                if goal is not None and got.value is not None:
                    row.met = "yes" if goal.met(got.value) else "NO"
            except NotMeasured as why:
                row.status, row.figures.now = "not measured", f"not measured: {why}"
            except Malformed as err:
                errors.append(str(err))
                row.status, row.figures.now = "malformed", f"malformed: {err}"
            row.keys = report.keys
        rows.append(row)
    return rows, sources, errors


def markdown(rows: list[Row], sources: dict[str, Any], since: float | None) -> str:
    cell: Callable[[str], str] = lambda s: (s or "").replace("|", "\\|")
    lines = ["| measure | now | peer or floor (same run) | ratio | goal | met? |", "|---|---|---|---|---|---|"]
    for r in rows:
        f = r.figures
        lines.append(f"| {cell(r.measure)}{' (stale)' * r.stale} | {cell(f.now)} | {cell(f.peer)} | {cell(f.ratio)} | "
                     f"{cell(r.goal)} | {r.met} |")
    lines += ["", "In parentheses: min-max over the rounds of the run. Reports:"]
    for name, src in sources.items():
        when = f"written {src['mtime']}" if src["present"] else "absent"
        old = f", before this run (--since {iso(since)})" if src["stale"] and since else ""
        lines.append(f"- {name}: {src['file']} ({when}{old})")
    stamps = [s["mtime_epoch"] for s in sources.values() if s["present"]]
    if len(stamps) > 1:
        span = max(stamps) - min(stamps)
        lines.append(f"\nThe reports were written over {span / 3600:.1f} h, {iso(min(stamps))} to {iso(max(stamps))}"
                     + (": longer than one hack/bench/all, so from different runs (and machine loads)."
                        if span > 3 * 3600 else "."))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=ROOT / "build" / "bench",
                        help="where the reports are (default: build/bench of this tree)")
    parser.add_argument("--out", type=Path, help="the summary's JSON (default: DIR/summary.json)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the Markdown table here")
    parser.add_argument("--since", type=float, metavar="EPOCH",
                        help="mark the rows of reports written before this time (seconds since the epoch) as stale")
    args = parser.parse_args()
    rows, sources, errors = build(args.dir, args.since)
    table = markdown(rows, sources, args.since)
    out = args.out or args.dir / "summary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    counts = {s: sum(1 for r in rows if (r.met if s in ("yes", "NO") else r.status) == s)
              for s in ("yes", "NO", "not run", "not measured", "malformed")}
    out.write_text(json.dumps({"generated": iso(datetime.now().timestamp()), "dir": str(args.dir),
                               "since": iso(args.since) if args.since else None, "counts": counts,
                               "reports": sources, "rows": [asdict(r) for r in rows], "errors": errors},
                              indent=2) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    print(table, end="")
    for err in errors:
        print(f"bench-summary: {err}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
