"""Start the node agent with this node's P4Runtime endpoint (the DaemonSet's agent container).

A node whose IPU or DPU serves P4Runtime itself (as infrap4d does on the IPU)
carries the label `multinet.io/ipu=external` and the annotation
`multinet.io/p4runtime-endpoint=HOST:PORT`: the agent dials that device, and
the software target's DaemonSet does not run there (it selects nodes without
the label). Every other node's agent dials the software target beside it.

The endpoint is read once, at start: changing the annotation takes a restart
of the node's agent pod. Goes once `multinet agent` reads its Node itself.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Mapping
from pathlib import Path

IPU_LABEL = "multinet.io/ipu"
EXTERNAL = "external"
ENDPOINT_ANNOTATION = "multinet.io/p4runtime-endpoint"


class NodeSettingError(Exception):
    """The Node's multinet label or annotation cannot be used; the message names it."""


def check_endpoint(value: str, where: str) -> str:
    """HOST:PORT with a port in range; an IPv6 host in brackets."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise NodeSettingError(f"{where}: {value!r} is not HOST:PORT with a port from 1 to 65535")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            raise NodeSettingError(f"{where}: {host!r} is not a bracketed IPv6 address") from None
    elif ":" in host:
        raise NodeSettingError(f"{where}: an IPv6 host goes in brackets, as [{host}]:{port}")
    return value


def endpoint(node: str, labels: Mapping[str, str], annotations: Mapping[str, str], software: str) -> str:
    """The P4Runtime address this node's agent dials."""
    where = f"node {node} annotation {ENDPOINT_ANNOTATION}"
    given = annotations.get(ENDPOINT_ANNOTATION)
    if labels.get(IPU_LABEL) == EXTERNAL:
        if not given:
            raise NodeSettingError(f"node {node} is labelled {IPU_LABEL}={EXTERNAL} (no software target runs "
                                   f"there) but has no annotation {ENDPOINT_ANNOTATION}=HOST:PORT")
        return check_endpoint(given, where)
    if given:
        raise NodeSettingError(f"{where} is set but the node lacks the label {IPU_LABEL}={EXTERNAL}: the "
                               "software target would run beside an external one; set both or neither")
    return check_endpoint(software, "--software-target")


def read_node(node: str, kubeconfig: Path | None) -> tuple[dict[str, str], dict[str, str]]:
    # Through the project's one Kubernetes adapter (the image ships the packages).
    from kube import Kube
    from kube.resources import NODES

    meta = Kube.connect(str(kubeconfig) if kubeconfig else None).get(NODES, node).get("metadata") or {}
    return dict(meta.get("labels") or {}), dict(meta.get("annotations") or {})


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Run `multinet agent` with this node's P4Runtime endpoint.",
                                     usage="%(prog)s --node NAME [options] -- AGENT-ARGS...")
    parser.add_argument("--node", required=True, help="this node's name")
    parser.add_argument("--kubeconfig", type=Path, help="else the in-cluster config (passed on to the agent)")
    parser.add_argument("--software-target", default="127.0.0.1:9559",
                        help="the software IPU target beside the agent (default 127.0.0.1:9559)")
    parser.add_argument("--print", action="store_true", help="print the agent's command line instead of running it")
    parser.add_argument("agent_args", nargs=argparse.REMAINDER, help="after --: the agent's own flags")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    rest = args.agent_args[1:] if args.agent_args[:1] == ["--"] else args.agent_args
    labels, annotations = read_node(args.node, args.kubeconfig)
    try:
        address = endpoint(args.node, labels, annotations, args.software_target)
    except NodeSettingError as err:
        print(f"multinet agent: {err}", file=sys.stderr)
        return 2
    command = ["multinet", "agent", "--node", args.node, *rest, "--p4runtime", address]
    if args.kubeconfig:
        command[2:2] = ["--kubeconfig", str(args.kubeconfig)]
    if args.print:
        print(" ".join(command))
        return 0
    sys.stdout.flush()
    os.execvp(command[0], command)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
