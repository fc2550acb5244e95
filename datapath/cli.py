"""`multinet ipu` (the IPU target) and `multinet trace` (the pipeline model).

Wiring only; heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from typing import TYPE_CHECKING

from datapath import tls
from podnetwork.names import NODE_PREFIX

if TYPE_CHECKING:
    import grpc

    from datapath.entries import Entry
    from datapath.pipeline import Pipeline
    from datapath.target.kernel import Kernel


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ipu = subparsers.add_parser("ipu", help="run the IPU target (a P4Runtime server) for one node")
    ipu.add_argument("--netns", help="the node's IPU network namespace (must exist)")
    ipu.add_argument("--port", type=int, default=9559, help="P4Runtime gRPC port (default 9559)")
    ipu.add_argument("--address", default="127.0.0.1", help="listen address (in the caller's namespace)")
    ipu.add_argument("--device-id", type=int, default=1)
    ipu.add_argument("--prefix", default=NODE_PREFIX, help="prefix of links and nftables tables it creates")
    ipu.add_argument("--vtep", help="this node's underlay address (VXLAN source)")
    ipu.add_argument("--underlay", help="the underlay link inside the IPU namespace")
    ipu.add_argument("--size", action="append", default=[], metavar="TABLE=N", help="table size override")
    ipu.add_argument("--metrics-port", type=int, metavar="PORT",
                     help="serve Prometheus /metrics on this port of --metrics-address (off when omitted)")
    ipu.add_argument("--metrics-address", help="address of --metrics-port (default: --address); P4Runtime "
                     "may stay on the loopback while a scraper reaches /metrics")
    tls.add_server_args(ipu)
    ipu.add_argument("--features", action="store_true", help="print detected kernel features as JSON and exit")
    ipu.add_argument("--p4info-out", metavar="FILE",
                     help="write the pipeline's P4Info (protobuf text format, with the --size overrides) and exit")
    ipu.set_defaults(func=run_ipu)

    trace = subparsers.add_parser("trace", help="explain what the pipeline does to a described packet")
    trace.add_argument("--target", action="append", required=True, metavar="[VTEP=]HOST:PORT",
                       help="P4Runtime target(s) to read entries from, one per node; the first is the packet's "
                            "node. VTEP: the node's underlay address, which tunnels name (inferred when omitted)")
    trace.add_argument("--device-id", type=int, default=1)
    trace.add_argument("--network", type=int, required=True, help="network id")
    trace.add_argument("--src", required=True)
    trace.add_argument("--dst", required=True)
    trace.add_argument("--proto", default="tcp", choices=["tcp", "udp", "sctp", "icmp"])
    trace.add_argument("--dport", type=int, default=0)
    trace.add_argument("--json", action="store_true")
    tls.add_client_args(trace)
    trace.set_defaults(func=run_trace)

    top = subparsers.add_parser("top", help="per-network and per-Service counters of IPU targets, refreshed")
    top.add_argument("--metrics", action="append", required=True, metavar="URL",
                     help="a target's /metrics (multinet ipu --metrics-port), e.g. http://127.0.0.1:9562/metrics")
    top.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    top.add_argument("--once", action="store_true", help="print one view and exit")
    top.set_defaults(func=run_top)


def _sizes(items: Sequence[str]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for item in items:
        name, _, value = item.partition("=")
        if not value.isdigit():
            raise SystemExit(f"--size: expected TABLE=N, got {item!r}")
        sizes[name] = int(value)
    return sizes


def run_ipu(args: argparse.Namespace) -> int:
    from datapath import netns
    from datapath.pipeline import p4info_text, pipeline
    from datapath.target.kernel import Kernel
    from datapath.target.server import serve

    try:
        description = pipeline(_sizes(args.size))
    except ValueError as err:
        print(f"--size: {err}", file=sys.stderr)
        return 2
    if args.p4info_out:
        # For controllers that push the pipeline themselves (p4runtime-shell --config).
        with open(args.p4info_out, "w") as f:
            f.write(p4info_text(description))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.netns:
        print("--netns: required (the node's IPU network namespace)", file=sys.stderr)
        return 2
    if not netns.exists(args.netns):
        print(f"--netns: no network namespace {args.netns!r}", file=sys.stderr)
        return 2
    try:
        server_tls = tls.server_from_args(args)
        credentials = server_tls.credentials() if server_tls else None
    except tls.TlsConfigError as err:
        print(err, file=sys.stderr)
        return 2
    kernel = Kernel(args.netns, args.prefix, vtep=args.vtep, underlay=args.underlay, pipeline=description)
    if args.features:
        print(json.dumps({"detected": kernel.features.as_dict(), "used": kernel.features.used()}, indent=2))
        kernel.close()
        return 0
    if args.metrics_port is None:
        server, _ = serve(kernel, f"{args.address}:{args.port}", args.device_id, description, credentials=credentials)
    else:
        server = _serve_with_metrics(kernel, args, description, credentials)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=1).wait()
    kernel.close()
    return 0


def _serve_with_metrics(kernel: Kernel, args: argparse.Namespace, description: Pipeline,
                        credentials: grpc.ServerCredentials | None) -> grpc.Server:
    from prometheus_client import CollectorRegistry

    from datapath.target.metrics import KernelCollector, P4RuntimeMetrics, serve_metrics
    from datapath.target.server import serve

    registry = CollectorRegistry()
    server, servicer = serve(kernel, f"{args.address}:{args.port}", args.device_id, description,
                             P4RuntimeMetrics(registry), credentials)

    def policy_pods() -> list[Entry]:
        with servicer.lock:  # between two Write batches
            return [e for t in ("policy_pod", "policy_pod6") for e in servicer.store.entries(t)]

    KernelCollector(kernel.stats, policy_pods, registry)
    address = args.metrics_address or args.address
    serve_metrics(address, args.metrics_port, registry)
    logging.getLogger(__name__).info("metrics on http://%s:%d/metrics", address, args.metrics_port)
    return server


def run_top(args: argparse.Namespace) -> int:
    from datapath import top

    if args.interval <= 0:
        print("--interval: must be more than 0", file=sys.stderr)
        return 2
    try:
        return top.run(args.metrics, args.interval, args.once)
    except KeyboardInterrupt:
        return 0
    except OSError as err:
        print(f"--metrics: {err}", file=sys.stderr)
        return 1


def run_trace(args: argparse.Namespace) -> int:
    from datapath.client.p4rt import P4RuntimeClient
    from datapath.entries import Entry, ip, version_of
    from datapath.trace import Packet, trace

    try:
        version = version_of(args.src)
        if version_of(args.dst) != version:
            raise ValueError("one address family for both")
    except ValueError as err:
        print(f"--src, --dst: {err}", file=sys.stderr)
        return 2
    try:
        client_tls = tls.client_from_args(args)
        credentials = client_tls.credentials() if client_tls else None
    except tls.TlsConfigError as err:
        print(err, file=sys.stderr)
        return 2
    tables: list[list[Entry]] = []
    vteps: list[int | None] = []
    for given in args.target:
        vtep, _, address = given.rpartition("=")
        try:
            vteps.append(ip(vtep) if vtep else None)
        except ValueError:
            print(f"--target {given!r}: {vtep!r} is not an address", file=sys.stderr)
            return 2
        # Reading needs no arbitration: trace never disturbs the agent's session.
        client = P4RuntimeClient(address, args.device_id, credentials=credentials)
        client.open()
        tables.append(client.read())
        client.close()
    proto = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1 if version == 4 else 58}[args.proto]
    result = trace(Packet(args.network, ip(args.src), ip(args.dst), proto, args.dport, version), tables[0],
                   tables[1:], vteps[1:])
    if args.json:
        print(json.dumps({"verdict": result.verdict, "steps": list(result.steps)}, indent=2))
    else:
        for step in result.steps:
            print(step)
        print(f"verdict: {result.verdict}")
    return 0 if result.verdict != "unknown" else 1
