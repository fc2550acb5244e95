"""`multinet controller`: run the PodNetwork controller."""

from __future__ import annotations

import argparse
import logging
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("controller", help="run the PodNetwork controller (KEP-3698)",
                                   description="Conditions, finalizers, admission webhooks, "
                                   "scheduling gates and cluster-wide IPAM for PodNetworks.")
    parser.add_argument("--kubeconfig", help="admin kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--workers", type=int, default=16, help="parallel reconcile workers (default 16)")
    parser.add_argument("--webhook-port", type=int, default=0,
                        help="port of the admission webhook server on 127.0.0.1 (default: a free one)")
    parser.add_argument("--cert-dir", help="where to keep the webhook CA and serving cert (default: a temp dir)")
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
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(Options(kubeconfig=args.kubeconfig, workers=args.workers, webhook_port=args.webhook_port,
                       resync_seconds=args.resync_seconds, sweep_seconds=args.sweep_seconds,
                       cert_dir=args.cert_dir, metrics_port=args.metrics_port))
