"""Locate (and if needed build) the pinned Kubernetes binaries.

`hack/k8s-binaries` is the one place that knows the pinned versions and the
cache layout; this module only asks it, or takes a directory the user names.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REQUIRED = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "agnhost")
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "k8s-binaries"


class BinariesError(RuntimeError):
    pass


def find_bin_dir(explicit: str | None, build: bool) -> Path:
    """The directory holding REQUIRED. Builds them with hack/k8s-binaries when allowed."""
    given = explicit or os.environ.get("MULTINET_K8S_BIN")
    if given:
        bin_dir = Path(given)
    elif BUILD_SCRIPT.exists():
        args = [str(BUILD_SCRIPT)] + ([] if build else ["--print"])
        # stderr passes through: the build prints its progress there.
        out = subprocess.run(args, stdout=subprocess.PIPE, text=True)
        if out.returncode != 0:
            raise BinariesError(f"building the Kubernetes binaries failed: {BUILD_SCRIPT} exited {out.returncode}")
        bin_dir = Path(out.stdout.strip().splitlines()[-1])
    else:
        raise BinariesError("no Kubernetes binaries: pass --bin-dir or set MULTINET_K8S_BIN")
    missing = [b for b in REQUIRED if not os.access(bin_dir / b, os.X_OK)]
    if missing:
        raise BinariesError(
            f"missing {', '.join(missing)} in {bin_dir}: run hack/k8s-binaries to build them"
        )
    return bin_dir
