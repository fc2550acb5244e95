"""Fixtures shared by every part's tests.

`control_plane` / `kubeconfig`: the real local Kubernetes control plane. A
cluster that is already up (`multinet cluster up`) is used as it is and left
running; otherwise one is started for the session and stopped at its end.

`controller`: the session's multinet controller against it (or the running
cluster's own), started on first use.

`real_nodes`: a cluster of its own with two real nodes (kubelet, containerd
and multinet on each), made by `multinet cluster up --nodes 2` and checked
to leave nothing behind after `down`. Needs root.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from multinet.cluster.binaries import find_bin_dir
from multinet.cluster.control_plane import ControlPlane
from multinet.cluster.layout import Layout, default_state_dir
from tests.controller.controller_support import ControllerProcess
from tests.support.nodes import UP_TIMEOUT, Cluster, real_cluster


# Tests never assert on wall time: hypothesis' per-example deadline would
# fail on a loaded machine, so it is off for the whole suite.
settings.register_profile("multinet", deadline=None)
settings.load_profile("multinet")


def _progress(line: str) -> None:
    print(f"[cluster] {line}", file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    plane = ControlPlane(Layout(default_state_dir()))
    if plane.is_up():
        yield plane
        return
    plane = ControlPlane(plane.layout, find_bin_dir(None, build=True))
    plane.up(_progress)
    try:
        yield plane
    finally:
        plane.down(_progress)


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.layout.admin_kubeconfig


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    return find_bin_dir(None, build=True)


def require_root() -> None:
    """Skip the calling test unless it runs as root (network namespaces, nftables)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces and nftables tables")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Whichever test on real nodes runs first makes the cluster (`real_nodes`) in its
    own time: it may take more than the per-test timeout. A test's own mark stands."""
    for item in items:
        if "real_nodes" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(UP_TIMEOUT + 600), append=True)


@pytest.fixture(scope="session")
def real_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_root()
    with real_cluster(tmp_path_factory.mktemp("nodes")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def controller(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    """The session's controller (or the running cluster's), shared by every module that
    needs one; here so a module elsewhere can make it step down (tests/deploy)."""
    log = tmp_path_factory.mktemp("controller") / "controller.log"
    with socket.socket() as s:  # a free port for its /metrics
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = ControllerProcess(str(kubeconfig), log, "--metrics-port", str(port))
    proc.metrics_url = f"http://127.0.0.1:{port}/metrics"
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
