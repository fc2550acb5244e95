"""multinet's own parts as bare processes on the machine: the controller once,
and per node the IPU target and the node agent.

This is how `cluster up --nodes` installs multinet until the add-on in
`deploy/` does it as on any cluster; `start` is the one call to replace then.
The agent delegates eth0 to the node's primary conflist (the reference bridge
plugin) and containerd calls `multinet-cni` through the multinet conflist in
the node's CNI conf dir.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from multinet.cluster.control_plane import ControlPlane, port_taken
from multinet.cluster.processes import ComponentError, spawn

if TYPE_CHECKING:
    from multinet.cluster.nodes import NodePlan

Progress = Callable[[str], None]


def multinet(*args: str) -> list[str]:
    return [sys.executable, "-m", "multinet.cli", *args]


def start(plane: ControlPlane, plans: Sequence[NodePlan], progress: Progress) -> list[str]:
    """Start the controller and each node's IPU target and agent; returns their record names."""
    from multinet.cluster.topology import UNDERLAY_LINK
    from podnetwork.names import NODE_PREFIX

    kubeconfig = str(plane.layout.admin_kubeconfig)
    names = ["controller"]
    _spawn(plane, "controller", multinet(
        "controller", "--kubeconfig", kubeconfig, "--cert-dir", str(plane.layout.root / "controller")), progress)
    for plan in plans:
        port = plan.p4runtime.rsplit(":", 1)[1]
        if port_taken(int(port)):
            raise ComponentError(f"ipu-{plan.name}: port {plan.p4runtime} is taken by another process")
        _spawn(plane, f"ipu-{plan.name}", multinet(
            "ipu", "--netns", plan.ipu_ns, "--port", port, "--prefix", NODE_PREFIX,
            "--vtep", plan.node_ip, "--underlay", UNDERLAY_LINK), progress)
        _spawn(plane, f"agent-{plan.name}", multinet(
            "agent", "--node", plan.name, "--kubeconfig", kubeconfig, "--socket", str(plan.socket),
            "--state-dir", str(plan.root / "agent"), "--ipu-netns", plan.ipu_ns, "--host-netns", plan.host_ns,
            "--cni-conf-dir", str(plan.cni_conf_dir), "--cni-bin-dir", str(plan.cni_bin_dir),
            "--p4runtime", plan.p4runtime), progress)
        names += [f"ipu-{plan.name}", f"agent-{plan.name}"]
    return names


def _spawn(plane: ControlPlane, name: str, argv: list[str], progress: Progress) -> None:
    log = plane.layout.log(name)
    record = spawn(name, argv, log)
    record.save(plane.layout.pid_file(name))
    progress(f"{name}: started (pid {record.pid}, log {log})")
