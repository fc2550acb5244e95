"""The faults hack/chaos injects, each a SIGKILL of one process found by pid,
never by name: a container's process through its node's own containerd (and
checked to be in that node's cgroup), a cluster process through the pid file
`multinet cluster up` wrote (checked by its start time). Each is then brought
back by what restarts it: kubelet for a DaemonSet's or Deployment's container;
`multinet cluster up` for etcd and kube-apiserver (it starts the control-plane
components that are not running); and for a node's containerd and kubelet,
which nothing on the local cluster supervises (no systemd unit), this lane
itself, with the argv and log of their pid file and into the node's cgroup,
as a unit's Restart=always would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kube import Kube, KubeError, Obj
from kube.resources import PODS
from multinet.cluster import cgroups, kubelet
from multinet.cluster.control_plane import ControlPlane
from multinet.cluster.nodes import NodePlan
from multinet.cluster.processes import ProcessRecord, is_running, spawn

SYSTEM = "multinet-system"
NODE_KINDS = ("agent", "ipu", "containerd", "kubelet")
# kind -> (pod label app.kubernetes.io/name, container)
CONTAINERS = {"agent": ("multinet-node", "agent"), "ipu": ("multinet-ipu", "ipu"),
              "controller": ("multinet-controller", "controller")}


class FaultError(RuntimeError):
    pass


@dataclass(frozen=True)
class Fault:
    kind: str  # agent, ipu, controller, containerd, kubelet, kube-apiserver, etcd
    node: str | None  # the node whose process is killed (None: control plane)
    replica: int = 0  # controller: which of the Deployment's pods (by name order)

    @property
    def name(self) -> str:
        where = self.node or (f"replica{self.replica}" if self.kind == "controller" else "control-plane")
        return f"{self.kind}@{where}"

    @property
    def touches(self) -> tuple[str, ...]:
        """Nodes whose datapath the fault may disturb (a controller or the control
        plane programs no node's datapath)."""
        return (self.node,) if self.node and self.kind in NODE_KINDS else ()


def wait_until(what: str, ok: Callable[[], bool], timeout: float, step: float = 0.5) -> float:
    start = time.monotonic()
    while True:
        try:
            if ok():
                return time.monotonic() - start
        except (KubeError, OSError, subprocess.SubprocessError):
            pass  # the part being waited for is still coming back
        if time.monotonic() - start > timeout:
            raise FaultError(f"{what}: not back after {timeout:.0f}s")
        time.sleep(step)


class Injector:
    def __init__(self, kube: Kube, plane: ControlPlane, plans: list[NodePlan], env: dict[str, str]) -> None:
        self.kube, self.plane, self.env = kube, plane, env
        self.plans = {p.name: p for p in plans}

    def inject(self, fault: Fault, timeout: float) -> dict[str, object]:
        """Kill, wait until it is back; returns what was done and how long recovery took."""
        if fault.kind in CONTAINERS:
            return self._container(fault, timeout)
        if fault.kind in ("containerd", "kubelet"):
            return self._node_process(fault, timeout)
        return self._control_plane(fault, timeout)

    # --- containers (kubelet restarts them) -------------------------------------

    def _pod(self, fault: Fault) -> Obj:
        app, _ = CONTAINERS[fault.kind]
        pods = sorted(self.kube.list(PODS, SYSTEM, label_selector=f"app.kubernetes.io/name={app}"),
                      key=lambda p: str(p["metadata"]["name"]))
        pods = [p for p in pods if fault.node is None or p["spec"].get("nodeName") == fault.node]
        if len(pods) <= fault.replica:
            raise FaultError(f"{fault.name}: no such pod of {app}")
        return pods[fault.replica]

    def _container(self, fault: Fault, timeout: float) -> dict[str, object]:
        _, container = CONTAINERS[fault.kind]
        pod = self._pod(fault)
        name, node = pod["metadata"]["name"], pod["spec"]["nodeName"]
        status = next(s for s in pod["status"]["containerStatuses"] if s["name"] == container)
        plan = self.plans[node]
        pid = self._task_pid(plan, status["containerID"].split("://")[-1])
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()

        def back() -> bool:
            now = self.kube.get(PODS, name, SYSTEM)
            s = next(s for s in now["status"]["containerStatuses"] if s["name"] == container)
            return bool(s["restartCount"] > status["restartCount"] and s["ready"])

        recovered = wait_until(f"{fault.name} ({name})", back, timeout)
        return {"pod": f"{SYSTEM}/{name}", "node": node, "pid": pid, "restarted_by": "kubelet (restartPolicy Always)",
                "recovered_s": round(time.monotonic() - killed, 2) if recovered >= 0 else None}

    @staticmethod
    def _task_pid(plan: NodePlan, container_id: str) -> int:
        for line in plan.containerd.ctr("tasks", "ls").splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == container_id:
                pid = int(fields[1])
                # Only a process of this node's own cgroup subtree (never another cluster's).
                if plan.cgroup_root not in Path(f"/proc/{pid}/cgroup").read_text():
                    raise FaultError(f"pid {pid} of container {container_id} is not in {plan.cgroup_root}")
                return pid
        raise FaultError(f"{plan.name}: no task {container_id} in its containerd")

    # --- a node's containerd and kubelet (restarted here) ----------------------

    def _kill_record(self, name: str) -> ProcessRecord:
        record = self.plane.record(name)
        if record is None or not is_running(record):
            raise FaultError(f"{name}: not running")
        os.kill(record.pid, signal.SIGKILL)
        wait_until(f"{name} to die", lambda: not is_running(record), 10, 0.05)
        return record

    def _node_process(self, fault: Fault, timeout: float) -> dict[str, object]:
        assert fault.node is not None
        plan, name = self.plans[fault.node], f"{fault.kind}-{fault.node}"
        old = self._kill_record(name)
        killed = time.monotonic()
        time.sleep(1.0)  # down for a moment, as a crash loop's back-off would be
        new = spawn(name, old.argv, Path(old.log))
        new.save(self.plane.layout.pid_file(name))  # `multinet cluster down` stops this one
        cgroups.join(plan.cgroup_root, new.pid)
        if fault.kind == "containerd":
            wait_until(name, plan.containerd.serving, timeout)
        else:
            wait_until(name, lambda: kubelet.healthz(plan.node_ip, self.plane.layout.pki)[0], timeout)
        self._wait_node_ready(fault.node, timeout)
        return {"node": fault.node, "pid": old.pid, "new_pid": new.pid,
                "restarted_by": "hack/chaos, with the argv of its pid file (no supervisor for node processes)",
                "recovered_s": round(time.monotonic() - killed, 2)}

    def _wait_node_ready(self, node: str, timeout: float) -> None:
        from kube.resources import NODES

        def ready() -> bool:
            conditions = self.kube.get(NODES, node)["status"].get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        wait_until(f"node {node} Ready", ready, timeout)

    # --- etcd and kube-apiserver (`multinet cluster up` starts what is missing) --

    def _control_plane(self, fault: Fault, timeout: float) -> dict[str, object]:
        old = self._kill_record(fault.kind)
        killed = time.monotonic()
        time.sleep(1.0)
        up = subprocess.run([sys.executable, "-m", "multinet.cli", "cluster", "up"], env=self.env,
                            capture_output=True, text=True, timeout=timeout)
        if up.returncode != 0:
            raise FaultError(f"multinet cluster up after {fault.name}: {up.stderr[-2000:]}")
        component = next(c for c in self.plane.components if c.name == "kube-apiserver")
        wait_until("kube-apiserver /readyz", lambda: self.plane.probe(component)[0], timeout)
        new = self.plane.record(fault.kind)
        return {"pid": old.pid, "new_pid": new.pid if new else None,
                "restarted_by": "multinet cluster up (starts the control-plane components not running)",
                "recovered_s": round(time.monotonic() - killed, 2)}


def plan_faults(nodes: list[str], controllers: int, short: bool) -> list[Fault]:
    """Every kind in turn; the full lane on every node and each controller replica,
    the short one once each (node faults alternate between the nodes)."""
    if short:
        node = [Fault(kind, nodes[i % len(nodes)]) for i, kind in enumerate(NODE_KINDS)]
        return [node[0], node[1], Fault("controller", None, 0), node[2], node[3],
                Fault("kube-apiserver", None), Fault("etcd", None)]
    out = [Fault(kind, n) for kind in ("agent", "ipu") for n in nodes]
    out += [Fault("controller", None, i) for i in range(controllers)]
    out += [Fault(kind, n) for kind in ("containerd", "kubelet") for n in nodes]
    return out + [Fault("kube-apiserver", None), Fault("etcd", None)]
