"""The fault lane behind hack/chaos (see there): pods churned over secondary
networks and TCP flows across nodes while processes are SIGKILLed in turn,
with every invariant checked after each fault and at the end."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import chaos_checks
from chaos_faults import SYSTEM, Fault, FaultError, Injector, plan_faults, wait_until
from chaos_flows import Flow

from kube import Kube, KubeError, NotFound, Obj
from kube.kinds import NETWORK_PARAMS, POD_NETWORKS
from kube.resources import NAMESPACES, PODS
from multinet.cluster.control_plane import ControlPlane
from multinet.cluster.layout import Layout, default_state_dir
from multinet.cluster.nodes import NodePlan, Nodes
from multinet.cluster.processes import ComponentError
from podnetwork import names

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.56"
NAMESPACE = "chaos"
# Reported, not judged (a loaded machine stalls a flow too): flows of nodes a fault did
# not touch whose longest gap during it was longer than this (10 lines' worth).
STALL_OK_S = 1.0


def log(msg: str) -> None:
    print(f"chaos: {msg}", file=sys.stderr, flush=True)


def pod(name: str, node: str, networks: list[str], role: str) -> Obj:
    annotation = json.dumps([{"podNetworkName": n, "interfaceName": f"net{i + 1}"} for i, n in enumerate(networks)])
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"chaos": role},
                         "annotations": {names.NETWORKS_ANNOTATION: annotation}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "pause", "image": AGNHOST, "args": ["pause"]}]}}


@dataclass
class Churn:
    created: int = 0
    running: int = 0
    deleted: int = 0
    create_errors: int = 0
    never_running: list[str] = field(default_factory=list)
    missing_interfaces: dict[str, list[str]] = field(default_factory=dict)


def refuse_foreign_routes(machine_link: str, plans: list[NodePlan]) -> None:
    """The machine must route each node's pod range over this cluster's own link, or
    pods' replies from the apiserver go elsewhere (another local cluster on the same ranges)."""
    for plan in plans:
        first = plan.pod_cidr.split("/")[0].rsplit(".", 1)[0] + ".1"
        route = subprocess.run(["ip", "-j", "route", "get", first], capture_output=True, text=True, check=True)
        dev = json.loads(route.stdout)[0].get("dev")
        if dev != machine_link:
            raise SystemExit(f"chaos: {plan.name}'s pod range {plan.pod_cidr} is routed over {dev}, not this "
                             f"cluster's {machine_link}: another local cluster took the same ranges")


class Lane:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.plane = ControlPlane(Layout(default_state_dir()))
        self.plans: list[NodePlan] = Nodes(self.plane).plans()
        if not self.plane.is_up() or len(self.plans) < 2:
            raise SystemExit("chaos: needs the local cluster with 2 or more nodes: multinet cluster up --nodes 2")
        refuse_foreign_routes(Nodes(self.plane).machine_link, self.plans)
        self.env = dict(os.environ)
        self.kube = Kube.from_kubeconfig(str(self.plane.layout.admin_kubeconfig))
        self.injector = Injector(self.kube, self.plane, self.plans, self.env)
        self.networks: list[str] = args.networks.split(",")
        self.flows: list[Flow] = []
        self.churn = Churn()
        self.allowed = 0  # pods the churn may have made by now: a share per fault, so each lands amid churn
        self.paused = threading.Event()
        self.idle = threading.Event()
        self.stop = threading.Event()

    # --- setup ---------------------------------------------------------------------

    def setup(self) -> None:
        def not_terminating() -> bool:  # a namespace of an earlier run may still be going
            ns = self.kube.find(NAMESPACES, NAMESPACE)
            return ns is None or not ns["metadata"].get("deletionTimestamp")

        wait_until(f"namespace {NAMESPACE} of an earlier run gone", not_terminating, 180)
        wait_until("the default PodNetwork (the controller at work)",
                   lambda: self.kube.find(POD_NETWORKS, "default") is not None, 120)
        self._ensure(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        for i, network in enumerate(self.networks):
            self._ensure(NETWORK_PARAMS, {
                "apiVersion": f"{names.PARAMS_GROUP}/{names.PARAMS_VERSION}", "kind": names.PARAMS_KIND,
                "metadata": {"name": network},
                "spec": {"topology": "L2", "ipv4": {"subnet": f"10.{71 + i}.0.0/24", "gateway": f"10.{71 + i}.0.1"},
                         "mtu": 1450}})
            self._ensure(POD_NETWORKS, {
                "apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.POD_NETWORK_KIND,
                "metadata": {"name": network},
                "spec": {"provider": "multinet.io", "parametersRefs": [
                    {"group": names.PARAMS_GROUP, "kind": names.PARAMS_KIND, "name": network}]}})
        server_node, client_node = self.plans[0].name, self.plans[1].name
        for i, network in enumerate(self.networks):
            for role, node in (("server", server_node), ("client", client_node)):
                self.kube.create(PODS, pod(f"flow{i}-{role}", node, [network], "flow"), NAMESPACE)
        for i, network in enumerate(self.networks):
            server = self._wait_running(f"flow{i}-server", 180)
            self._wait_running(f"flow{i}-client", 180)
            assert server is not None, f"flow{i}-server never ran"
            address = next(s["ips"][0] for s in chaos_checks.network_status(server) if s["podNetworkName"] == network)
            flow = Flow(network, f"{NAMESPACE}/flow{i}-server", f"{NAMESPACE}/flow{i}-client", server_node,
                        client_node, address.split("/")[0])
            flow.start(self.env)
            self.flows.append(flow)
        wait_until("every flow echoing", lambda: all(f.latest.get("echoed") for f in self.flows), 60)
        log(f"{len(self.flows)} flows echoing: {', '.join(f.name for f in self.flows)}")

    def _ensure(self, resource: Any, body: Obj) -> None:
        if self.kube.find(resource, body["metadata"]["name"]) is None:
            self.kube.create(resource, body)

    def _wait_running(self, name: str, timeout: float) -> Obj | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                p = self.kube.get(PODS, name, NAMESPACE)
                if p.get("status", {}).get("phase") == "Running" and chaos_checks.network_status(p):
                    return p
            except KubeError:
                pass
            time.sleep(0.5)
        return None

    # --- churn ---------------------------------------------------------------------

    def interfaces(self, p: Obj, timeout: float = 90.0) -> list[str]:
        """What the pod lacks of its interfaces. `cluster exec` finds the pod through the
        apiserver, which a control-plane fault may have down for a while: tried again
        until `timeout`, so only a failure that outlasts it counts."""
        ref = f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        deadline = time.monotonic() + timeout
        while True:
            out = subprocess.run([sys.executable, "-m", "multinet.cli", "cluster", "exec", ref, "--", "ip", "-j",
                                  "addr"], env=self.env, capture_output=True, text=True, timeout=60)
            if out.returncode == 0:
                return chaos_checks.missing_interfaces(p, out.stdout)
            if time.monotonic() > deadline or self.stop.is_set():
                return [f"exec failed: {out.stderr.strip()[-200:]}"]
            time.sleep(1.0)

    def churn_loop(self) -> None:
        batch = 0
        while not self.stop.is_set():
            if self.paused.is_set() or self.churn.created >= min(self.allowed, self.args.pods):
                self.idle.set()
                time.sleep(0.2)
                continue
            self.idle.clear()
            self._batch(batch)
            batch += 1

    def _batch(self, batch: int) -> None:
        made = []
        for i in range(min(self.args.batch, min(self.allowed, self.args.pods) - self.churn.created)):
            name = f"churn-{batch}-{i}"
            node = self.plans[i % len(self.plans)].name
            try:
                self.kube.create(PODS, pod(name, node, self.networks, "churn"), NAMESPACE)
            except KubeError:
                self.churn.create_errors += 1
                continue
            made.append(name)
            self.churn.created += 1
        for name in made:
            p = self._wait_running(name, self.args.pod_timeout)
            if p is None:
                self.churn.never_running.append(name)
                continue
            self.churn.running += 1
            if missing := self.interfaces(p):
                self.churn.missing_interfaces[name] = missing
        for plan in self.plans:
            chaos_checks.remember_representors(plan)
        for name in made:  # all at once, then each waited for
            try:
                self.kube.delete(PODS, name, NAMESPACE)
            except KubeError:
                pass  # gone already, or the apiserver is down: _delete tries again
        for name in made:
            self._delete(name)

    def _delete(self, name: str) -> None:
        def gone() -> bool:
            try:
                # Not forced (grace 0 would remove the object before kubelet tears the sandbox
                # down): the object goes once kubelet is done, so "gone" means gone from the node.
                self.kube.delete(PODS, name, NAMESPACE)
            except NotFound:
                return True
            return self.kube.find(PODS, name, NAMESPACE) is None

        try:
            wait_until(f"pod {name} deleted", gone, self.args.pod_timeout, 1.0)
            self.churn.deleted += 1
        except FaultError:
            pass  # counted as left over by the checks

    def pause(self) -> None:
        self.paused.set()
        self.idle.wait(self.args.pod_timeout * 3)

    # --- faults and checks ---------------------------------------------------------

    def check(self) -> dict[str, Any]:
        return chaos_checks.converge(self.kube, self.plans, self.interfaces, NAMESPACE, self.args.settle,
                                     self.args.sweep)

    def run_fault(self, fault: Fault, share: int) -> dict[str, Any]:
        self.allowed += share
        self.paused.clear()
        time.sleep(self.args.churn_before)  # the fault lands while pods come and go
        start = time.time()
        log(f"{fault.name}: SIGKILL")
        try:
            done: dict[str, Any] = self.injector.inject(fault, self.args.fault_timeout)
        except (FaultError, KubeError, OSError, subprocess.SubprocessError) as err:
            done = {"error": str(err)[:1000]}
        log(f"{fault.name}: {done}")
        self.pause()
        time.sleep(2.0)
        stalls = {f.name: f.stall(start, time.time()) for f in self.flows}
        result = {"fault": fault.name, "kind": fault.kind, "touches_nodes": list(fault.touches), **done,
                  "flow_stalls_s": stalls, "checks": self.check()}
        untouched = [f for f in self.flows if not {f.client_node, f.server_node} & set(fault.touches)]
        result["untouched_flows_stalled"] = [f.name for f in untouched if stalls[f.name] > STALL_OK_S]
        log(f"{fault.name}: checks {summary(result['checks'])}, flow stalls {stalls}")
        return result


def summary(checks: dict[str, Any]) -> dict[str, Any]:
    if "error" in checks:
        return {"error": checks["error"]}
    return {k: checks[k] for k in chaos_checks.COUNTS}


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hack/chaos", description=__doc__)
    p.add_argument("--short", action="store_true",
                   help="the suite's version: a few pods and one fault of each kind (a few minutes)")
    p.add_argument("--networks", default="chaos-a,chaos-b,chaos-c",
                   help="secondary networks to make and use, comma-separated (default: %(default)s)")
    p.add_argument("--pods", type=int, help="pods to churn over the run (default 240, --short 12)")
    p.add_argument("--batch", type=int, default=4, help="pods created, then deleted, at a time (default 4)")
    p.add_argument("--pod-timeout", type=float, default=90.0, help="seconds a pod may take to run or go")
    p.add_argument("--fault-timeout", type=float, default=180.0, help="seconds a killed part may take to be back")
    # A sandbox whose teardown a kubelet kill interrupted is torn down by kubelet's
    # container garbage collection, which runs once a minute: the checks outwait one.
    p.add_argument("--settle", type=float, default=90.0, help="seconds the checks wait for the parts to catch up")
    p.add_argument("--sweep", type=float, default=75.0,
                   help="seconds more for orphaned allocations (the controller sweeps every 60 s)")
    p.add_argument("--churn-before", type=float, help="seconds of churn before each fault (default 20, --short 5)")
    p.add_argument("--deadline", type=float, help="seconds the whole run may take (default 3600, --short 900)")
    p.add_argument("--faults", help="only these faults, comma-separated names as the report gives them "
                   "(e.g. ipu@node1,controller@replica0)")
    p.add_argument("--output", type=Path, default=Path("build/chaos/chaos.json"))
    args = p.parse_args(argv)
    for name, full, short in (("pods", 240, 14), ("churn_before", 20.0, 5.0), ("deadline", 3600.0, 900.0)):
        if getattr(args, name) is None:
            setattr(args, name, short if args.short else full)
    if len([n for n in args.networks.split(",") if n]) < 1:
        p.error("--networks: name at least one network")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    lane = Lane(args)
    started, t0 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), time.monotonic()
    controllers = len(lane.kube.list(PODS, SYSTEM, label_selector="app.kubernetes.io/name=multinet-controller"))
    faults = plan_faults([p.name for p in lane.plans], controllers, args.short)
    if args.faults:
        wanted = [n for n in args.faults.split(",") if n]
        unknown = sorted(set(wanted) - {f.name for f in faults})
        if unknown:
            print(f"hack/chaos: --faults: no fault named {', '.join(unknown)}; this cluster's are "
                  f"{', '.join(f.name for f in faults)}", file=sys.stderr)
            return 2
        faults = [f for f in faults if f.name in wanted]
    report: dict[str, Any] = {"mode": "short" if args.short else "full", "started": started,
                              "nodes": [p.name for p in lane.plans], "networks": lane.networks,
                              "stall_ok_s": STALL_OK_S, "faults": []}
    churn = threading.Thread(target=lane.churn_loop, daemon=True)
    try:
        log(f"setup: networks {', '.join(lane.networks)}, flow pods")
        lane.setup()
        churn.start()
        for fault in faults:
            if time.monotonic() - t0 > args.deadline:
                report["stopped_early"] = f"deadline of {args.deadline:.0f}s reached before {fault.name}"
                break
            report["faults"].append(lane.run_fault(fault, -(-args.pods // len(faults))))
        lane.allowed = args.pods
        lane.paused.clear()
        wait_until("the churn's pod count", lambda: lane.churn.created >= args.pods,
                   max(0.0, args.deadline - (time.monotonic() - t0)), 2.0)
        lane.pause()
        report["final"] = lane.check()
        report["flows"] = [f.summary() for f in lane.flows]
    except (FaultError, KubeError, ComponentError, OSError, subprocess.SubprocessError, StopIteration,
            AssertionError) as err:
        report["error"] = f"{type(err).__name__}: {err}"
        log(f"stopped: {report['error']}")
    finally:
        lane.stop.set()
        for f in lane.flows:
            f.stop()
        report["after_cleanup"] = cleanup(lane)
    report["pods"] = asdict(lane.churn)
    report["duration_s"] = round(time.monotonic() - t0, 1)
    report["invariants"] = invariants(report)
    report["untouched_flows_stalled_over_s"] = {f["fault"]: f["untouched_flows_stalled"]
                                                for f in report["faults"] if f["untouched_flows_stalled"]}
    report["ok"] = not any(report["invariants"].values())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    log(f"wrote {args.output}: {report['invariants']} ({report['duration_s']}s)")
    return 0 if report["ok"] else 1


def cleanup(lane: Lane) -> dict[str, Any]:
    """Delete every pod of the lane, then check the nodes keep nothing of them."""
    for p in lane.kube.list(PODS, NAMESPACE):
        lane._delete(p["metadata"]["name"])
    result = lane.check()
    for network in lane.networks:  # what setup made, so the cluster is as before
        for resource in (POD_NETWORKS, NETWORK_PARAMS):
            try:
                lane.kube.delete(resource, network)
            except NotFound:
                pass
    lane.kube.delete(NAMESPACES, NAMESPACE)
    return result


def invariants(report: dict[str, Any]) -> dict[str, int]:
    """Every count that must be 0: summed over the checks after each fault, at the end and after cleanup."""
    passes = [f["checks"] for f in report["faults"]] + [report.get("final", {"error": "no final check"}),
                                                         report["after_cleanup"]]
    out = {k: sum(int(c.get(k, 0)) for c in passes) for k in chaos_checks.COUNTS}
    out["check_errors"] = sum(1 for c in passes if "error" in c)
    out["fault_errors"] = sum(1 for f in report["faults"] if "error" in f)
    out["flows_reconnected"] = sum(f["reconnects"] for f in report.get("flows", []))
    out["churn_missing_interfaces"] = len(report["pods"]["missing_interfaces"])
    out["flows_not_running"] = sum(1 for f in report.get("flows", []) if not f["running"])
    out["lane_errors"] = int("error" in report)
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
