"""A node's cgroup subtree: everything its runtime starts lives under it.

kubelet runs with the cgroupfs driver and `cgroupRoot: /<node>`; containerd
(and so every shim it forks) is moved into `/<node>/runtime` before kubelet
asks for a pod. The subtree is then exactly what the node started: `down`
kills what is left in it and removes it, and nothing else.

Every mounted hierarchy is handled: the cgroup v1 ones kubelet's cgroupfs
driver uses here, and the unified (v2) one of a hybrid mount, where runc
makes the containers' cgroups too.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from multinet.cluster.processes import ComponentError

RUNTIME = "runtime"  # containerd's own cgroup inside the node's subtree


class CgroupError(ComponentError):
    pass


def hierarchies() -> list[Path]:
    """The mount point of every cgroup hierarchy (v1 ones and the unified one)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] in (["cgroup"], ["cgroup2"]):
            found.append(Path(left.split()[4]))
    return found


def create(root: str) -> None:
    """`/<root>` and `/<root>/runtime` in every hierarchy; cpuset copies its parent's
    cpus and mems (a new cpuset cgroup starts empty and accepts no task)."""
    for mount in hierarchies():
        for path in (mount / root, mount / root / RUNTIME):
            path.mkdir(exist_ok=True)
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if (path / knob).exists() and not (path / knob).read_text().strip():
                    (path / knob).write_text((path.parent / knob).read_text())


def join(root: str, pid: int) -> None:
    """Move `pid` into `/<root>/runtime` in every hierarchy."""
    for mount in hierarchies():
        (mount / root / RUNTIME / "cgroup.procs").write_text(f"{pid}\n")


def members(root: str) -> set[int]:
    """Every process in the subtree, in any hierarchy."""
    pids: set[int] = set()
    for mount in hierarchies():
        top = mount / root
        if not top.is_dir():
            continue
        for dirpath, _, files in os.walk(top):
            if "cgroup.procs" in files:
                try:
                    text = (Path(dirpath) / "cgroup.procs").read_text()
                except OSError:
                    continue
                pids.update(int(p) for p in text.split())
    return pids


def kill_all(root: str, timeout: float = 10.0) -> int:
    """SIGKILL every process in the subtree until it is empty; returns how many were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while pids := members(root):
        for pid in pids - killed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed |= pids
        if time.monotonic() > deadline:
            raise CgroupError(f"cgroup /{root}: processes {sorted(pids)} survive SIGKILL")
        time.sleep(0.05)
    return len(killed)


def remove(root: str) -> None:
    """Remove the (empty) subtree from every hierarchy, deepest first."""
    for mount in hierarchies():
        top = mount / root
        if not top.is_dir():
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(Path(w[0]).parts)):
            try:
                os.rmdir(dirpath)
            except FileNotFoundError:
                pass
