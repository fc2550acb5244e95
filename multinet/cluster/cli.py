"""`multinet cluster up | down | status | kubeconfig`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from multinet.cluster.binaries import BinariesError, find_bin_dir
from multinet.cluster.control_plane import ControlPlane
from multinet.cluster.layout import Layout, default_state_dir
from multinet.cluster.processes import ComponentError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = commands.add_parser(
        "cluster",
        help="the built-in local Kubernetes control plane",
        description="A real etcd, kube-apiserver, kube-controller-manager and kube-scheduler "
        "running as local processes on 127.0.0.1 (no container engine needed).",
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
                    help="emulated nodes to add, each with its IPU target, node agent and node "
                    "emulator, plus the multinet controller (default 0: the control plane alone; needs root)")
    up.set_defaults(func=_up)

    down = verbs.add_parser("down", help="stop the processes this cluster started and remove its state")
    down.add_argument("--keep", action="store_true", help="keep PKI, etcd data and logs")
    down.set_defaults(func=_down)

    status = verbs.add_parser("status", help="each component's pid, port and health")
    status.set_defaults(func=_status)

    kubeconfig = verbs.add_parser("kubeconfig", help="print the admin kubeconfig's path")
    kubeconfig.set_defaults(func=_kubeconfig)

    exec_ = verbs.add_parser("exec", help="run a command inside an emulated pod's network namespace",
                             description="Like 'kubectl exec' for the emulated nodes: runs COMMAND in "
                             "the sandbox network namespace of pod NAMESPACE/NAME.")
    exec_.add_argument("pod", metavar="NAMESPACE/NAME")
    exec_.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    exec_.set_defaults(func=_exec)


def _plane(args: argparse.Namespace, bin_dir: Path | None = None) -> ControlPlane:
    return ControlPlane(Layout(args.state_dir or default_state_dir()), bin_dir)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _up(args: argparse.Namespace) -> int:
    from multinet.cluster.nodes import Nodes

    plane = _plane(args)
    nodes_made = Nodes(plane).topology_file.exists()
    if plane.is_up() and (nodes_made or not args.nodes):
        print(f"cluster is already up; kubeconfig: {plane.layout.admin_kubeconfig}")
        return 0
    if args.nodes < 0:
        print("multinet cluster up: --nodes must be 0 or more", file=sys.stderr)
        return 2
    refused = _check_faults()
    if refused:
        print(f"multinet cluster up: {refused}", file=sys.stderr)
        return 2
    if args.nodes and os.geteuid() != 0:
        print("multinet cluster up: --nodes needs root (it creates network namespaces)", file=sys.stderr)
        return 2
    try:
        plane = _plane(args, find_bin_dir(args.bin_dir, build=True))
        plane.up(_progress, timeout=args.timeout)  # a no-op for what already runs
        if args.nodes and not nodes_made:
            Nodes(plane).start(args.nodes, _progress)
    except (BinariesError, ComponentError) as err:
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

    plane.down(_progress, keep=args.keep, before_control_plane=lambda: Nodes(plane).remove_namespaces(_progress))
    print("cluster is down" + (f"; state kept in {plane.layout.root}" if args.keep else ""))
    return 0


def _status(args: argparse.Namespace) -> int:
    plane = _plane(args)
    rows = plane.status()
    print(f"{'COMPONENT':<26}{'PID':<9}{'PORT':<7}STATE")
    for h in rows:
        print(f"{h.name:<26}{h.pid or '-':<9}{h.port:<7}{h.state}")
    return 0 if all(h.state == "healthy" for h in rows) else 3


def _kubeconfig(args: argparse.Namespace) -> int:
    path = _plane(args).layout.admin_kubeconfig
    if not path.exists():
        print(f"multinet cluster kubeconfig: no kubeconfig at {path}; run 'multinet cluster up'",
              file=sys.stderr)
        return 1
    print(path)
    return 0


def register_node(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    node = commands.add_parser(
        "node",
        help="run a node emulator (stands where kubelet and a container runtime would)",
        description="Registers a Node and keeps its Lease, creates a network namespace per pod "
        "bound to it, calls the CNI plugins as a runtime does, serves the pod's ports from "
        "inside it and reports pod status. Needs root.",
    )
    node.add_argument("--name", required=True, help="the Node's name")
    node.add_argument("--kubeconfig", required=True, type=Path, help="kubeconfig to reach the apiserver")
    node.add_argument("--host-netns", required=True, help="the node's host network namespace (must exist)")
    node.add_argument("--internal-ip", required=True, help="the Node's InternalIP")
    node.add_argument("--cni-conf-dir", required=True, type=Path, help="CNI network configuration directory")
    node.add_argument("--cni-bin-dir", required=True, type=Path, action="append",
                      help="CNI plugin directory (repeatable, searched in order)")
    node.add_argument("--state-dir", required=True, type=Path, help="where sandbox records are kept")
    node.add_argument("--pod-cidr", help="the Node's spec.podCIDR, if any")
    node.set_defaults(func=_node)


def _node(args: argparse.Namespace) -> int:
    import logging

    from kubernetes import config
    from pyroute2 import netns

    from multinet.cluster.node_emulator import NodeEmulator

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.host_netns not in netns.listnetns():
        print(f"multinet node: --host-netns {args.host_netns!r} does not exist", file=sys.stderr)
        return 2
    missing = [str(d) for d in args.cni_bin_dir if not d.is_dir()]
    if missing:
        print(f"multinet node: --cni-bin-dir {', '.join(missing)} is not a directory", file=sys.stderr)
        return 2
    emulator = NodeEmulator(
        config.new_client_from_config(str(args.kubeconfig)), args.name, args.host_netns,
        args.internal_ip, args.cni_conf_dir, args.cni_bin_dir, args.state_dir, args.pod_cidr,
    )
    import signal

    def _terminate(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _terminate)
    try:
        emulator.run()
    finally:  # SIGTERM is a node shutdown: its sandboxes go with it
        emulator.shutdown()
    return 0


def _exec(args: argparse.Namespace) -> int:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    from multinet.cluster.node_emulator import sandbox_netns

    namespace, _, name = args.pod.partition("/")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not name or not command:
        print("multinet cluster exec: usage: exec NAMESPACE/NAME -- COMMAND ...", file=sys.stderr)
        return 2
    kubeconfig = _plane(args).layout.admin_kubeconfig
    try:
        pod = client.CoreV1Api(config.new_client_from_config(str(kubeconfig))).read_namespaced_pod(name, namespace)
    except ApiException as err:
        print(f"multinet cluster exec: pod {args.pod}: {err.reason}", file=sys.stderr)
        return 1
    if not pod.spec.node_name or pod.status.phase != "Running":
        print(f"multinet cluster exec: pod {args.pod} is not running (phase {pod.status.phase})", file=sys.stderr)
        return 1
    netns = sandbox_netns(pod.spec.node_name, pod.metadata.uid)
    os.execvp("ip", ["ip", "netns", "exec", netns, *command])
