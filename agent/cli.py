"""`multinet agent`: the node agent's entry point (wiring only)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from cni.shim import DEFAULT_SOCKET
from datapath import tls
from podnetwork.names import NODE_PREFIX


def register(commands: Any) -> None:
    agent = commands.add_parser("agent", help="run the node agent behind the multinet-cni plugin")
    agent.add_argument("--node", required=True, help="this node's name (pods are watched by spec.nodeName)")
    agent.add_argument("--kubeconfig", type=Path, help="kubeconfig of the cluster (default: in-cluster)")
    agent.add_argument("--socket", type=Path, default=Path(DEFAULT_SOCKET), help="unix socket the plugin talks to")
    agent.add_argument("--state-dir", type=Path, default=Path("/var/lib/multinet/cni"), help="per-node attachment records")
    agent.add_argument("--ipu-netns", help="network namespace that receives the secondary interfaces' representors")
    agent.add_argument("--host-netns", help="the node's host network namespace (eth0 host side, macvlan uplinks)")
    agent.add_argument("--link-prefix", default=NODE_PREFIX, help="prefix of node-side link names")
    agent.add_argument("--pod-cidr", help="serve eth0 as a routed range from this IPv4 CIDR")
    agent.add_argument("--cni-conf-dir", type=Path, help="delegate eth0 to the primary conflist found here")
    agent.add_argument("--cni-bin-dir", action="append", default=[], help="where delegated plugins live (repeatable)")
    agent.add_argument("--p4runtime", metavar="HOST:PORT",
                       help="the node's IPU target; without it no datapath is programmed and pods turn "
                       "ready once their interfaces exist")
    agent.add_argument("--metrics-port", type=int, metavar="PORT",
                       help="serve Prometheus /metrics (CNI verbs, P4Runtime writes) on this port (off when omitted)")
    agent.add_argument("--metrics-address", default="0.0.0.0", help="address of --metrics-port (default all)")
    tls.add_client_args(agent)
    agent.add_argument("--log-level", default="INFO")
    agent.add_argument("--crash-at", default="", help=argparse.SUPPRESS)  # test hook, see agent.faults
    agent.set_defaults(func=run_agent)
    install = commands.add_parser("install-cni", help="install the multinet-cni plugin into a CNI bin dir")
    install.add_argument("--bin-dir", type=Path, default=Path("/opt/cni/bin"), help="the runtime's CNI bin dir")
    install.set_defaults(func=run_install)


def run_install(args: argparse.Namespace) -> int:
    from cni.install import install

    print(install(args.bin_dir))
    return 0


def node_config(args: argparse.Namespace) -> Any:
    """Validate the flags, reporting every problem at once."""
    from agent.verbs import NodeConfig

    problems = []
    pod_cidr = None
    if args.pod_cidr:
        try:
            pod_cidr = ipaddress.IPv4Network(args.pod_cidr, strict=True)
        except ValueError as err:
            problems.append(f"--pod-cidr {args.pod_cidr!r}: {err}")
    if args.pod_cidr and args.cni_conf_dir:
        problems.append("--pod-cidr and --cni-conf-dir exclude each other (eth0 is served or delegated)")
    if args.cni_conf_dir and not args.cni_conf_dir.is_dir():
        problems.append(f"--cni-conf-dir {args.cni_conf_dir} is not a directory")
    if args.metrics_port is not None and not 1 <= args.metrics_port <= 65535:
        problems.append(f"--metrics-port {args.metrics_port}: must be a port number in 1..65535")
    if not 1 <= len(args.link_prefix) <= 6:
        problems.append("--link-prefix must have 1 to 6 characters (link names are at most 15)")
    if problems:
        raise SystemExit("multinet agent: " + "; ".join(problems))
    return NodeConfig(
        node=args.node, state_dir=args.state_dir, ipu_netns=args.ipu_netns, host_netns=args.host_netns,
        link_prefix=args.link_prefix, pod_cidr=pod_cidr, conf_dir=args.cni_conf_dir,
        bin_dirs=tuple(args.cni_bin_dir) or ("/opt/cni/bin",),
    )


def run_agent(args: argparse.Namespace, datapath: Any = None) -> int:
    # Heavy imports here, so `multinet --help` and other parts stay quick.
    from agent.faults import Faults
    from agent.kube import KubePods, KubeReporter
    from agent.verbs import Agent
    from agent.server import AgentServer
    from kube import Kube

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = node_config(args)
    try:
        credentials = tls.client_credentials(args)
    except tls.TlsConfigError as err:
        raise SystemExit(f"multinet agent: {err}") from None
    kube = Kube.connect(str(args.kubeconfig) if args.kubeconfig else None)
    pods = KubePods(kube, config.node)
    pods.start()
    reporter = KubeReporter(kube, config.node)
    stop = threading.Event()
    if datapath is None and args.p4runtime:
        datapath, sync = _p4runtime_datapath(kube, args.p4runtime, config.node, stop, reporter, credentials)
    else:
        sync = None
    agent = Agent(config, pods, reporter, datapath, Faults(crash_at=args.crash_at))
    undone = agent.recover()
    logging.info("recovered: undid %d interrupted ADD(s) or attachments of gone namespaces", undone)
    if sync is not None:
        datapath.ports.update({p.representor: p for p in agent.recorded_ports()})
        sync.start()
    server = AgentServer(agent, args.socket)
    server.start()
    if args.metrics_port is not None:
        from agent import metrics

        metrics.serve(args.metrics_address, args.metrics_port)
        logging.info("metrics on http://%s:%d/metrics", args.metrics_address, args.metrics_port)
    logging.info("serving %s for node %s", args.socket, config.node)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
    if sync is not None:
        sync.stop()
    pods.stop()
    reporter.stop()
    return 0


def _p4runtime_datapath(kube: Any, address: str, node: str, stop: threading.Event, reporter: Any,
                        credentials: Any = None) -> tuple[Any, Any]:
    """The P4Runtime datapath and the loop that keeps policy, Services and
    remote routes programmed. The first sync waits until every cache has
    listed once: an empty view would remove a running node's entries."""
    import time

    from agent.sync import ClusterView, full_table_reporter
    from datapath.client.datapath import P4RuntimeDatapath
    from datapath.client.p4rt import P4RuntimeClient
    from datapath.client.sync import SyncLoop

    datapath = P4RuntimeDatapath(P4RuntimeClient(address, election_id=1, credentials=credentials))
    view = ClusterView(kube)
    view.start()
    while not view.synced() and not stop.is_set():
        time.sleep(0.1)
    datapath.state = view.desired(node)
    sync = SyncLoop(datapath, lambda: view.desired(node), on_full=full_table_reporter(reporter, view, node))
    view.subscribe(sync.mark_dirty)
    logging.info("datapath: P4Runtime target %s", address)
    return datapath, sync
