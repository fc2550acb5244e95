"""`multinet cluster up | down | status | kubeconfig`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from multinet.cluster.binaries import BinariesError, find_bin_dir
from multinet.cluster.layout import Layout, default_state_dir
from multinet.cluster.processes import ComponentError

if TYPE_CHECKING:
    from multinet.cluster.control_plane import ControlPlane


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = commands.add_parser(
        "cluster",
        help="the built-in local Kubernetes cluster",
        description="A real etcd, kube-apiserver, kube-controller-manager and kube-scheduler "
        "running as local processes (no container engine needed), and with --nodes real nodes: "
        "a kubelet and a containerd each in network namespaces of their own.",
    )
    cluster.add_argument(
        "--state-dir", type=Path, default=None,
        help="where PKI, etcd data, logs and pid files live "
        "(default: $MULTINET_STATE/cluster or ~/.local/state/multinet/cluster)",
    )
    verbs = cluster.add_subparsers(dest="verb", metavar="VERB", required=True)

    up = verbs.add_parser("up", help="start the control plane (a no-op when it is up)")
    up.add_argument("--bin-dir", help="directory with etcd and the Kubernetes binaries "
                    "(default: $MULTINET_K8S_BIN, else built by hack/k8s-binaries)")
    up.add_argument("--timeout", type=float, default=120.0,
                    help="seconds each component may take to turn healthy (default 120)")
    up.add_argument("--nodes", type=int, default=0,
                    help="nodes to add, each a kubelet and a containerd in its own network namespaces, "
                    "with multinet installed (default 0: the control plane alone; needs root)")
    up.set_defaults(func=_up)

    down = verbs.add_parser("down", help="stop the processes this cluster started and remove its state")
    down.add_argument("--keep", action="store_true", help="keep PKI, etcd data and logs")
    down.set_defaults(func=_down)

    status = verbs.add_parser("status", help="each component's pid, port and health")
    status.set_defaults(func=_status)

    kubeconfig = verbs.add_parser("kubeconfig", help="print the admin kubeconfig's path")
    kubeconfig.set_defaults(func=_kubeconfig)

    exec_ = verbs.add_parser("exec", help="run a host command inside a pod's network namespace",
                             description="Runs COMMAND (a program of this machine, not of the pod's image) "
                             "in the network namespace of pod NAMESPACE/NAME's sandbox, for debugging and for "
                             "tools the image lacks.")
    exec_.add_argument("pod", metavar="NAMESPACE/NAME")
    exec_.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    exec_.set_defaults(func=_exec)


def _plane(args: argparse.Namespace, bin_dir: Path | None = None) -> ControlPlane:
    # Here, not at the top: it brings the Kubernetes client (a fifth of a
    # second), which `multinet ipu` and the other parts' commands never use.
    from multinet.cluster.control_plane import ControlPlane

    return ControlPlane(Layout(args.state_dir or default_state_dir()), bin_dir)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _up(args: argparse.Namespace) -> int:
    from multinet.cluster import netplan
    from multinet.cluster.addon import AddonError
    from multinet.cluster.images import ImagesError
    from multinet.cluster.nodes import NodeImages, Nodes

    plane = _plane(args)
    nodes_made = Nodes(plane).topology_file.exists()
    if plane.is_up() and (nodes_made or not args.nodes):
        print(f"cluster is already up; kubeconfig: {plane.layout.admin_kubeconfig}")
        return 0
    if not 0 <= args.nodes <= netplan.MAX_NODES:
        print(f"multinet cluster up: --nodes must be 0 to {netplan.MAX_NODES}", file=sys.stderr)
        return 2
    refused = _check_faults()
    if refused:
        print(f"multinet cluster up: {refused}", file=sys.stderr)
        return 2
    if args.nodes and os.geteuid() != 0:
        print("multinet cluster up: --nodes needs root (it creates network namespaces)", file=sys.stderr)
        return 2
    try:
        # Images first (a build takes minutes): the address slot is free when chosen,
        # and taken (by the underlay link) moments later, not after a build.
        images = NodeImages.find(_progress) if args.nodes and not nodes_made else None
        if args.nodes and not plane.is_up():  # nodes reach the apiserver on the cluster's underlay
            netplan.load_or_choose(plane.layout.netplan_file)
        plane = _plane(args, find_bin_dir(args.bin_dir, build=True))
        plane.up(_progress, timeout=args.timeout)  # a no-op for what already runs
        if images is not None:
            Nodes(plane).start(args.nodes, images, _progress)
    except (AddonError, BinariesError, ComponentError, ImagesError, netplan.NetPlanError) as err:
        print(f"multinet cluster up: {err}", file=sys.stderr)
        return 1
    layout = plane.layout
    print(f"cluster is up at {plane.server}")
    print(f"  kubeconfig: {layout.admin_kubeconfig}")
    print(f"  logs:       {layout.logs}")
    print(f"  state:      {layout.root}")
    return 0


def _check_faults() -> str | None:
    """Refuse a bad MULTINET_FAULTS before anything starts. Nothing else to do:
    every process is spawned with this environment, so the test-only switches
    (podnetwork.faults) reach the controller, the agents and the IPU targets."""
    try:
        from podnetwork import faults
    except ValueError as err:  # faults.FaultError, raised as the module reads the variable
        return str(err)
    if faults.ACTIVE:
        _progress(f"test-only faults switched on: {', '.join(sorted(faults.ACTIVE))}")
    return None


def _down(args: argparse.Namespace) -> int:
    plane = _plane(args)
    if not plane.layout.root.exists():
        print("cluster is not up; nothing to do")
        return 0
    from multinet.cluster.nodes import Nodes

    nodes = Nodes(plane)
    nodes.stop_runtimes(_progress)
    plane.down(_progress, keep=args.keep, before_control_plane=lambda: nodes.remove_namespaces(_progress))
    print("cluster is down" + (f"; state kept in {plane.layout.root}" if args.keep else ""))
    return 0


def _status(args: argparse.Namespace) -> int:
    from multinet.cluster.nodes import Nodes

    plane = _plane(args)
    rows = [(h.name, h.pid, str(h.port), h.state) for h in plane.status()] + Nodes(plane).status()
    print(f"{'COMPONENT':<32}{'PID':<9}{'PORT':<19}STATE")
    for name, pid, port, state in rows:
        print(f"{name:<32}{pid or '-':<9}{port:<19}{state}")
    return 0 if all(row[3] == "healthy" for row in rows) else 3


def _kubeconfig(args: argparse.Namespace) -> int:
    path = _plane(args).layout.admin_kubeconfig
    if not path.exists():
        print(f"multinet cluster kubeconfig: no kubeconfig at {path}; run 'multinet cluster up'",
              file=sys.stderr)
        return 1
    print(path)
    return 0


def _exec(args: argparse.Namespace) -> int:
    from multinet.cluster.containerd import ContainerdError
    from multinet.cluster.nodeapi import NodeApi
    from multinet.cluster.nodes import Nodes

    namespace, _, name = args.pod.partition("/")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not name or not command:
        print("multinet cluster exec: usage: exec NAMESPACE/NAME -- COMMAND ...", file=sys.stderr)
        return 2
    plane = _plane(args)
    try:
        pod = NodeApi(plane.layout.admin_kubeconfig).pod(namespace, name)
    except LookupError as err:
        print(f"multinet cluster exec: {err}", file=sys.stderr)
        return 1
    if pod.phase != "Running":
        print(f"multinet cluster exec: pod {args.pod} is not running (phase {pod.phase})", file=sys.stderr)
        return 1
    plan = next((p for p in Nodes(plane).plans() if p.name == pod.node), None)
    if plan is None:
        print(f"multinet cluster exec: pod {args.pod} runs on {pod.node!r}, not a node of this cluster",
              file=sys.stderr)
        return 1
    try:
        netns = plan.containerd.sandbox_netns(pod.uid)
    except ContainerdError as err:
        print(f"multinet cluster exec: {err}", file=sys.stderr)
        return 1
    if netns is None:
        print(f"multinet cluster exec: no sandbox of pod {args.pod} on {pod.node}", file=sys.stderr)
        return 1
    os.execvp("nsenter", ["nsenter", f"--net={netns}", "--", *command])
