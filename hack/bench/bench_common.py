"""What the benchmark scripts share: the local control plane they run
against, and how a report is written."""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from multinet.cluster.binaries import find_bin_dir
from multinet.cluster.control_plane import ControlPlane
from multinet.cluster.layout import Layout, default_state_dir


@contextmanager
def control_plane(log: Callable[[str], None]) -> Iterator[Path]:
    """The local control plane's admin kubeconfig: the running one, or one
    started here and stopped again at exit."""
    plane = ControlPlane(Layout(default_state_dir()))
    if plane.is_up():
        yield plane.layout.admin_kubeconfig
        return
    log("starting the local control plane")
    plane = ControlPlane(plane.layout, find_bin_dir(None, build=True))
    plane.up(log)
    try:
        yield plane.layout.admin_kubeconfig
    finally:
        plane.down(log)


def write_report(report: dict[str, Any], out: Path) -> None:
    """The JSON report to `out` and to stdout."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def export(rev: str, into: Path) -> tuple[Path, str]:
    """The tree of git revision `rev` of this repository (git archive), and its commit."""
    root = Path(__file__).resolve().parents[2]
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                            capture_output=True, text=True, check=True).stdout.strip()
    archive = into / "tree.tar"
    subprocess.run(["git", "-C", str(root), "archive", "-o", str(archive), commit], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree", commit


def rss_mib(pid: int) -> float:
    """A process's resident set size in MiB; 0 for one that has just exited."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0
