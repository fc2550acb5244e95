"""The local cluster's nodes: network namespaces and the per-node processes.

Each node is a "host" network namespace and an "ipu" namespace between its pods
and the underlay (`multinet.cluster.topology`); nodes share an underlay
bridge, and secondary networks span nodes by VXLAN. Per node run: the IPU
target (P4Runtime server realizing the pipeline in the ipu namespace), the
node agent (serves the CNI plugin, programs the target) and the node emulator
(kubelet and runtime). The controller runs once for the cluster.

Everything started is recorded (pid files, the namespace list) so `down`
removes exactly what `up` made.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from multinet.cluster.control_plane import ControlPlane, port_taken
from multinet.cluster.layout import default_state_dir
from multinet.cluster.processes import ComponentError, ProcessRecord, is_running, log_tail, spawn
from podnetwork.names import NODE_PREFIX

Progress = Callable[[str], None]
POD_CIDR = "10.244.{index}.0/24"  # the default network's per-node range, served by the agent
UNDERLAY_CIDR = "10.254.0.0/24"


@dataclass(frozen=True)
class NodePlan:
    name: str
    host_ns: str
    ipu_ns: str
    vtep: str
    p4runtime: str
    pod_cidr: str
    root: Path

    @property
    def socket(self) -> Path:
        return self.root / "agent.sock"

    @property
    def conf_dir(self) -> Path:
        return self.root / "net.d"


def multinet(*args: str) -> list[str]:
    return [sys.executable, "-m", "multinet.cli", *args]


class Nodes:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.root = plane.layout.root / "nodes"
        self.topology_file = plane.layout.root / "topology.json"
        self.cni_bin = self.root / "bin"
        # Node namespaces are machine-wide: a cluster in another state dir
        # gets its own prefix (at most 6 characters: link names are short).
        same = "MULTINET_STATE" not in os.environ and plane.layout.root == default_state_dir()
        self.prefix = NODE_PREFIX if same else f"mn{hashlib.sha256(str(plane.layout.root).encode()).hexdigest()[:3]}-"

    def start(self, count: int, progress: Progress) -> list[NodePlan]:
        if self.topology_file.exists():
            raise ComponentError("nodes: already made; run 'multinet cluster down' first")
        from multinet.cluster.topology import Topology  # the node layout, shared with the datapath's tests

        self.root.mkdir(parents=True, exist_ok=True)
        self._install_plugin()
        self._start("controller", multinet(
            "controller", "--kubeconfig", str(self.plane.layout.admin_kubeconfig),
            "--cert-dir", str(self.plane.layout.root / "controller")), progress)
        testbed = Topology(prefix=self.prefix, underlay_cidr=UNDERLAY_CIDR)
        plans = []
        try:
            for index in range(1, count + 1):
                node = testbed.add_node(f"node{index}")
                plan = NodePlan(node.name, node.host_ns, node.ipu_ns, node.vtep,
                                f"127.0.0.1:{self.plane.ports.p4runtime + index}", POD_CIDR.format(index=index),
                                self.root / node.name)
                plans.append(plan)
        finally:  # record what exists even if a later node failed
            self.topology_file.write_text(json.dumps({"namespaces": testbed.namespaces}))
        for plan in plans:
            self._start_node(plan, progress)
        for plan in plans:
            self._wait_ready(plan, progress)
        return plans

    def _wait_ready(self, plan: NodePlan, progress: Progress, timeout: float = 60.0) -> None:
        """Wait until the node's IPU target listens and its agent serves the plugin.

        A process that dies at start (a bad flag, a taken port) is reported now,
        with its log, rather than found later as a pod that never runs.
        """
        names = ["controller", f"ipu-{plan.name}", f"agent-{plan.name}", f"node-{plan.name}"]
        host, port = plan.p4runtime.rsplit(":", 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check(names)
            if _listening(host, int(port)) and plan.socket.exists():
                progress(f"{plan.name}: IPU target and agent ready")
                return
            time.sleep(0.2)
        raise ComponentError(f"{plan.name}: IPU target or agent not ready after {timeout:.0f}s "
                             f"(logs in {self.plane.layout.logs})")

    def _install_plugin(self) -> None:
        """The CNI bin dir holds the multinet plugin, as a runtime's /opt/cni/bin would."""
        from cni.install import install

        install(self.cni_bin)

    def _start_node(self, plan: NodePlan, progress: Progress) -> None:
        plan.root.mkdir(parents=True, exist_ok=True)
        plan.conf_dir.mkdir(exist_ok=True)
        (plan.conf_dir / "10-multinet.conflist").write_text(json.dumps({
            "cniVersion": "1.1.0", "name": "multinet",
            "plugins": [{"type": "multinet-cni", "socket": str(plan.socket)}],
        }, indent=2))
        from multinet.cluster.topology import UNDERLAY_LINK

        kubeconfig = str(self.plane.layout.admin_kubeconfig)
        port = int(plan.p4runtime.rsplit(":", 1)[1])
        if port_taken(port):
            raise ComponentError(f"ipu-{plan.name}: port {plan.p4runtime} is taken by another process")
        self._start(f"ipu-{plan.name}", multinet(
            "ipu", "--netns", plan.ipu_ns, "--port", plan.p4runtime.rsplit(":", 1)[1],
            "--prefix", NODE_PREFIX, "--vtep", plan.vtep, "--underlay", UNDERLAY_LINK), progress)
        self._start(f"agent-{plan.name}", multinet(
            "agent", "--node", plan.name, "--kubeconfig", kubeconfig, "--socket", str(plan.socket),
            "--state-dir", str(plan.root / "agent"), "--ipu-netns", plan.ipu_ns, "--host-netns", plan.host_ns,
            "--pod-cidr", plan.pod_cidr, "--p4runtime", plan.p4runtime), progress)
        self._start(f"node-{plan.name}", multinet(
            "node", "--name", plan.name, "--kubeconfig", kubeconfig, "--host-netns", plan.host_ns,
            "--internal-ip", plan.vtep, "--cni-conf-dir", str(plan.conf_dir), "--cni-bin-dir", str(self.cni_bin),
            "--state-dir", str(plan.root / "emulator"), "--pod-cidr", plan.pod_cidr), progress)

    def _start(self, name: str, argv: list[str], progress: Progress) -> ProcessRecord:
        log = self.plane.layout.log(name)
        record = spawn(name, argv, log)
        record.save(self.plane.layout.pid_file(name))
        progress(f"{name}: started (pid {record.pid}, log {log})")
        return record

    def check(self, names: list[str]) -> None:
        """Fail with the log tail of any recorded process that has exited."""
        for name in names:
            record = self.plane.record(name)
            if record and not is_running(record):
                raise ComponentError(f"{name}: exited\n{log_tail(Path(record.log))}")

    def remove_namespaces(self, progress: Progress) -> None:
        if not self.topology_file.exists():
            return
        for ns in reversed(json.loads(self.topology_file.read_text())["namespaces"]):
            if Path("/var/run/netns", ns).exists():
                subprocess.run(["ip", "netns", "delete", ns], check=False)
        self.topology_file.unlink()
        progress("node namespaces removed")


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
