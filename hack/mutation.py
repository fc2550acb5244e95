"""The mutation lane: does kep-conformance catch each test-only fault?

For a clean run (no fault) and then for each fault of `podnetwork.faults`:
bring the local cluster up with two nodes and MULTINET_FAULTS set to that one
fault, run the whole suite (--all-features --allow-disruptive), read which
tests failed from its JUnit, and take the cluster down. A fault is caught when
some test that passed in the clean run fails with the fault on; the table and
build/mutation/mutation.json say which profile and test caught it. Exit 1 when
a fault is missed, a run did not finish, or the clean run is not all-pass.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from podnetwork import faults  # noqa: E402  (the catalogue; the lane itself runs with no fault)

SHORT = ("gate-never-lifted", "ready-without-observed-generation", "duplicate-address")
CLEAN = "(none)"


@dataclass
class Run:
    fault: str
    outcome: str = ""  # clean-pass, clean-partial, caught, missed, up-failed, timeout, no-report
    seconds: float = 0.0
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # PROFILE/test
    skipped: list[str] = field(default_factory=list)
    caught_by: list[str] = field(default_factory=list)  # failed here, passed in the clean run
    detail: str = ""


def multinet(*args: str) -> list[str]:
    return [sys.executable, "-m", "multinet.cli", *args]


def run_logged(argv: list[str], log: Path, env: dict[str, str], timeout: float) -> int | None:
    """Run `argv` in its own process group, output to `log`; None on timeout (the group is killed)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(proc)
            return None
        except BaseException:  # Ctrl-C or SIGTERM of the lane: nothing it started outlives it
            stop_group(proc)
            raise


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)  # the group this lane started, no other
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def junit_cases(path: Path) -> tuple[list[str], list[str], list[str]]:
    """(passed, failed, skipped) as PROFILE/testcase from the suite's JUnit."""
    passed, failed, skipped = [], [], []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').split('.')[0]}/{case.get('name', '')}"
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(name)
        elif case.find("skipped") is not None:
            skipped.append(name)
        else:
            passed.append(name)
    return passed, failed, skipped


class Lane:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: Path = args.output
        self.base_env = {k: v for k, v in os.environ.items() if k != faults.ENV}

    def cluster_down(self, env: dict[str, str], log: Path) -> None:
        if run_logged(multinet("cluster", "down"), log, env, 300) != 0:
            raise SystemExit(f"mutation: 'multinet cluster down' failed; see {log}")

    def one(self, fault: str, clean: Run | None = None) -> Run:
        run, started = Run(fault), time.monotonic()
        workdir = self.out / "runs" / (fault if fault != CLEAN else "clean")
        workdir.mkdir(parents=True, exist_ok=True)
        log, report = workdir / "run.log", workdir / "report.yaml"
        for stale in workdir.glob("report*"):
            stale.unlink()
        env = dict(self.base_env, **({faults.ENV: fault} if fault != CLEAN else {}))
        print(f"mutation: [{fault}] cluster up --nodes {self.args.nodes}", file=sys.stderr, flush=True)
        try:
            if run_logged(multinet("cluster", "up", "--nodes", str(self.args.nodes)), log, env, 600) != 0:
                run.outcome, run.detail = "up-failed", f"cluster up failed; see {log}"
                return run
            kubeconfig = subprocess.run(multinet("cluster", "kubeconfig"), cwd=ROOT, env=env, check=True,
                                        capture_output=True, text=True).stdout.strip()
            print(f"mutation: [{fault}] kep-conformance (timeout {self.args.run_timeout:.0f}s)",
                  file=sys.stderr, flush=True)
            rc = run_logged([sys.executable, str(ROOT / "kep-conformance" / "kep-conformance"),
                             "--kubeconfig", kubeconfig,
                             "--implementation", str(ROOT / "kep-conformance/implementations/multinet.yaml"),
                             "--all-features", "--allow-disruptive", "--report-output", str(report),
                             "--pod-ready-timeout", str(self.args.pod_ready_timeout),
                             # as tests/e2e: multinet's in-use finalizer may take a hold plus a resync
                             "--converge-timeout", "120",
                             "-p", "no:cacheprovider", *self.first_catch(clean), *self.args.suite_args],
                            log, env, self.args.run_timeout)
            junit = report.with_suffix(".xml")
            if rc is None:
                run.outcome, run.detail = "timeout", f"the suite ran over {self.args.run_timeout:.0f}s"
            elif not junit.exists():
                run.outcome, run.detail = "no-report", f"the suite exited {rc} without JUnit; see {log}"
            else:
                run.passed, run.failed, run.skipped = junit_cases(junit)
        finally:
            self.cluster_down(env, log)
            run.seconds = round(time.monotonic() - started, 1)
        return run

    def first_catch(self, clean: Run | None) -> list[str]:
        """With --first-catch, a fault run stops at its first failure; the tests
        that failed clean are skipped (they cannot catch anything) so that the
        first failure is a catch."""
        if not self.args.first_catch or clean is None:
            return []
        failed = sorted({name.split("::")[-1].split("[")[0] for name in clean.failed})
        return ["--maxfail=1", *(["--skip-tests", ",".join(failed)] if failed else [])]

    def judge(self, run: Run, clean: Run | None) -> None:
        if run.outcome:
            return
        if clean is None:
            run.outcome = "clean-pass" if not run.failed and not run.skipped else \
                "clean-failed" if run.failed else "clean-partial"
            return
        run.caught_by = sorted(set(run.failed) & set(clean.passed))
        run.outcome = "caught" if run.caught_by else "missed"


def table(runs: list[Run]) -> str:
    rows = [("fault", "result", "caught by (profile/test)", "s")]
    for r in runs:
        by = ", ".join(r.caught_by[:3]) + (f" (+{len(r.caught_by) - 3})" if len(r.caught_by) > 3 else "")
        if r.fault == CLEAN:
            by = f"{len(r.passed)} passed, {len(r.failed)} failed, {len(r.skipped)} skipped"
        rows.append((r.fault, r.outcome if r.outcome != "missed" else "MISSED", by or r.detail, f"{r.seconds:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}" for a, b, c, d in rows)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hack/mutation", description=__doc__.split("\n\n")[0])
    p.add_argument("--faults", default="", help="comma-separated subset (default: every fault in the catalogue)")
    p.add_argument("--short", action="store_true", help=f"only {', '.join(SHORT)} (what hack/test runs)")
    p.add_argument("--nodes", type=int, default=2, help="nodes of each local cluster (default 2)")
    # The clean run took 853 s on 2 cores shared with other work; the e2e test gives the same suite an hour.
    p.add_argument("--run-timeout", type=float, default=2400.0, help="seconds one suite run may take (default 2400)")
    p.add_argument("--pod-ready-timeout", type=float, default=90.0,
                   help="the suite's wait for probe pods (default 90: a fault that keeps pods from starting "
                   "fails each module in 90 s instead of the suite's 180)")
    p.add_argument("--first-catch", action="store_true",
                   help="stop each fault's suite run at its first failure (faster; names one catching test)")
    p.add_argument("--allow-partial", action="store_true",
                   help="accept a clean run with skipped tests (nodes that cannot run the data-plane tests)")
    p.add_argument("--output", type=Path, default=ROOT / "build" / "mutation", help="where JSON and reports go")
    p.add_argument("--list", action="store_true", help="print the catalogue and exit")
    p.add_argument("suite_args", nargs="*", help="after --: more kep-conformance arguments")
    return p.parse_args(argv)


def write(args: argparse.Namespace, chosen: list[str], runs: list[Run], clean_ok: bool,
          started: float) -> dict[str, object]:
    doc: dict[str, object] = {
        "faults": len(chosen), "ran": len(runs) - 1, "caught": sum(r.outcome == "caught" for r in runs[1:]),
        "clean": runs[0].outcome, "cleanAccepted": clean_ok, "seconds": round(time.monotonic() - started, 1),
        "firstCatch": args.first_catch, "suiteArgs": args.suite_args, "runs": [asdict(r) for r in runs]}
    (args.output / "mutation.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(f"mutation: stopped by signal {signum}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.list:
        print("\n".join(f"{n:<36}{part:<12}{what}" for n, (part, what) in sorted(faults.CATALOGUE.items())))
        return 0
    try:
        faults.parse(args.faults)  # refuses unknown names; the lane keeps the order given
        given = list(dict.fromkeys(n.strip() for n in args.faults.split(",") if n.strip()))
        chosen = given or list(SHORT if args.short else faults.CATALOGUE)
    except faults.FaultError as err:
        print(f"mutation: --faults: {err}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("mutation: needs root (the local cluster's nodes are network namespaces)", file=sys.stderr)
        return 2
    from multinet.cluster.layout import default_state_dir

    state = default_state_dir()
    if state.exists():  # a cluster up already would be reused, without the fault
        print(f"mutation: a local cluster has state in {state}; take it down first", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminated)  # so the running cluster is taken down
    lane, started = Lane(args), time.monotonic()
    args.output.mkdir(parents=True, exist_ok=True)
    clean = lane.one(CLEAN)
    lane.judge(clean, None)
    runs = [clean]
    clean_ok = clean.outcome == "clean-pass" or (args.allow_partial and clean.outcome == "clean-partial")
    doc = write(args, chosen, runs, clean_ok, started)
    for fault in chosen:
        run = lane.one(fault, clean)
        lane.judge(run, clean)
        runs.append(run)
        print(f"mutation: [{fault}] {run.outcome} in {run.seconds:.0f}s", file=sys.stderr, flush=True)
        doc = write(args, chosen, runs, clean_ok, started)  # after each run: an interrupted lane keeps its results
    caught = sum(r.outcome == "caught" for r in runs[1:])
    print(table(runs))
    print(f"caught {caught} of {len(chosen)} faults; clean run: {clean.outcome}; "
          f"{doc['seconds']:.0f}s; JSON in {args.output / 'mutation.json'}")
    return 0 if clean_ok and caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
