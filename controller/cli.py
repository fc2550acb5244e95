"""`multinet controller`: run the PodNetwork controller."""

from __future__ import annotations

import argparse
import logging
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("controller", help="run the PodNetwork controller (KEP-3698)",
                                   description="Conditions, finalizers, admission webhooks, "
                                   "scheduling gates and cluster-wide IPAM for PodNetworks.")
    parser.add_argument("--kubeconfig", help="admin kubeconfig (default: in a pod its service account, else "
                        "$KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--workers", type=int, default=16, help="parallel reconcile workers (default 16)")
    parser.add_argument("--webhook-address", default="127.0.0.1",
                        help="address the admission webhook server and /healthz listen on (default 127.0.0.1)")
    parser.add_argument("--webhook-port", type=int, default=0,
                        help="port of the admission webhook server (default: a free one)")
    parser.add_argument("--webhook-service", metavar="NAMESPACE/NAME",
                        help="register the webhooks through this Service (port 443) and serve a certificate "
                        "for NAME.NAMESPACE.svc (default: at https://127.0.0.1:PORT)")
    parser.add_argument("--cert-secret", metavar="NAMESPACE/NAME",
                        help="keep the webhook CA and serving certificate in this Secret, shared by every "
                        "replica (default: made by each run)")
    parser.add_argument("--pod", metavar="NAMESPACE/NAME",
                        help="this replica's own pod (in a cluster: from the downward API): labelled "
                        "multinet.io/leader=true while it leads and serves admission, which the webhook "
                        "Service selects (default: no label)")
    parser.add_argument("--cert-dir", help="where to keep the webhook CA and serving cert (default: a temp dir)")
    parser.add_argument("--health-port", type=int, default=0,
                        help="serve GET /healthz on this port of --webhook-address (default: none)")
    parser.add_argument("--resync-seconds", type=float, default=30.0, help="period of the full resync")
    parser.add_argument("--sweep-seconds", type=float, default=60.0,
                        help="period of the sweep freeing addresses of pods that are gone")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port (off when omitted)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from controller.operator import Options, run  # kopf is only imported when the command runs

    if args.workers < 1:
        raise SystemExit("--workers: must be at least 1")
    for flag, port in (("--webhook-port", args.webhook_port), ("--health-port", args.health_port)):
        if not 0 <= port <= 65535:
            raise SystemExit(f"{flag}: {port} is not a port (0-65535)")
    if args.health_port and args.health_port == args.webhook_port:
        raise SystemExit(f"--health-port: {args.health_port} is the webhook's port too")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(Options(kubeconfig=args.kubeconfig, workers=args.workers, webhook_port=args.webhook_port,
                       resync_seconds=args.resync_seconds, sweep_seconds=args.sweep_seconds,
                       cert_dir=args.cert_dir, webhook_address=args.webhook_address,
                       webhook_service=object_name("--webhook-service", args.webhook_service),
                       cert_secret=object_name("--cert-secret", args.cert_secret),
                       health_port=args.health_port, pod=object_name("--pod", args.pod),
                       metrics_port=args.metrics_port))


def object_name(flag: str, value: str | None) -> tuple[str, str] | None:
    """NAMESPACE/NAME as a pair, or a refusal naming the flag."""
    if value is None:
        return None
    namespace, _, name = value.partition("/")
    if not namespace or not name or "/" in name:
        raise SystemExit(f"{flag}: expected NAMESPACE/NAME, got {value!r}")
    return namespace, name
