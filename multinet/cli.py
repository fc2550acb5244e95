"""The `multinet` command. Wiring only: each part registers its subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agent import cli as agent_cli
from controller import cli as controller_cli
from datapath import cli as datapath_cli
from multinet.cluster import cli as cluster_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multinet",
        description="Kubernetes multi-network (KEP-3698): PodNetwork objects, "
        "a controller, a multi-interface CNI and an IPU-offloaded datapath.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Each part adds its own subcommands; the handler is stored as `func`.
    cluster_cli.register(commands)
    controller_cli.register(commands)
    agent_cli.register(commands)
    datapath_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
