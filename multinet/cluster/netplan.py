"""The addresses of one local cluster: its underlay, the apiserver's address
on it, and each node's pod range on the default network.

The machine's own network namespace holds a link into every local cluster's
underlay and routes to its nodes' pod ranges (the apiserver reaches kubelets
and pods through them). That namespace is shared by every cluster on the
machine, so each cluster takes a slot whose ranges no route there covers yet,
and keeps it in its state, so `down --keep` and `up` find the same one.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

SLOTS = 16
MAX_NODES = 15  # node i has underlay address .i and pod range 16*slot+i in a /20


class NetPlanError(RuntimeError):
    pass


@dataclass(frozen=True)
class NetPlan:
    slot: int

    @property
    def underlay(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.254.{self.slot}.0/24")

    @property
    def gateway(self) -> str:
        """The machine's address on the underlay: where nodes reach the apiserver."""
        return f"10.254.{self.slot}.254"

    @property
    def cluster_cidr(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.244.{16 * self.slot}.0/20")

    def node_ip(self, index: int) -> str:
        """Node `index` (from 1)'s underlay address: its InternalIP and VXLAN endpoint."""
        _check_index(index)
        return f"10.254.{self.slot}.{index}"

    def pod_cidr(self, index: int) -> str:
        _check_index(index)
        return f"10.244.{16 * self.slot + index}.0/24"

    def ranges(self) -> tuple[ipaddress.IPv4Network, ...]:
        return (self.underlay, self.cluster_cidr)


def _check_index(index: int) -> None:
    if not 1 <= index <= MAX_NODES:
        raise NetPlanError(f"nodes: at most {MAX_NODES} per cluster (asked for node {index})")


def machine_ranges() -> list[ipaddress.IPv4Network]:
    """Every IPv4 prefix the machine's namespace routes or holds, but its default route."""
    out = subprocess.run(["ip", "-4", "-j", "route", "show", "table", "all"],
                         capture_output=True, text=True, check=True).stdout
    found = []
    for route in json.loads(out or "[]"):
        dst = route.get("dst", "")
        if dst in ("", "default"):
            continue
        net = ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False)
        if net.prefixlen:
            found.append(net)
    return found


def choose(taken: list[ipaddress.IPv4Network]) -> NetPlan:
    """The first slot none of whose ranges overlaps a taken prefix."""
    for slot in range(SLOTS):
        plan = NetPlan(slot)
        if not any(r.overlaps(t) for r in plan.ranges() for t in taken):
            return plan
    raise NetPlanError(f"every one of the {SLOTS} address slots (10.254.N.0/24 and 10.244.16N.0/20) "
                       "is routed on this machine already: bring another local cluster down")


def load(path: Path) -> NetPlan | None:
    try:
        slot = json.loads(path.read_text())["slot"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return NetPlan(int(slot)) if isinstance(slot, int) and 0 <= slot < SLOTS else None


def load_or_choose(path: Path) -> NetPlan:
    """The cluster's recorded plan, or a free one, recorded now."""
    plan = load(path)
    if plan is None:
        plan = choose(machine_ranges())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"slot": plan.slot}))
    return plan
