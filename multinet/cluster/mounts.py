"""Mounts a node's runtime made under its state: pod network namespaces
(containerd's netns_mounts_under_state_dir), container root filesystems
(overlay snapshots), kubelet's volumes (tmpfs for projected tokens)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def under(root: Path) -> list[Path]:
    """Mount points at or below `root`, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = Path(_unescape(line.split()[4]))
        if point == root or point.is_relative_to(root):
            points.append(point)
    return sorted(set(points), key=lambda p: len(p.parts), reverse=True)


def unmount_all(root: Path) -> list[Path]:
    """Unmount everything at or below `root`; returns what was unmounted.

    Called once every process of the node is gone, so nothing holds them;
    a mount stacked twice on one point is unmounted until none is left.
    """
    done = []
    for _ in range(8):
        points = under(root)
        if not points:
            break
        for point in points:
            if subprocess.run(["umount", str(point)], capture_output=True).returncode == 0:
                done.append(point)
    left = under(root)
    if left:
        raise OSError(f"still mounted under {root}: {', '.join(map(str, left))}")
    return done


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field
