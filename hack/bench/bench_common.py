"""What the benchmark scripts share: the local control plane they run
against, the controller as a child process, a watch of one namespace's
pods, and how a report is written."""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from controller import admission
from controller.install import remove_webhooks
from kube import Kube, KubeError
from kube.kinds import POD_NETWORKS
from kube.resources import MUTATING_WEBHOOKS
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


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def percentile(ordered: Sequence[float], q: float) -> float:
    """The sample at quantile `q` of sorted samples (nearest rank)."""
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(samples: Sequence[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds of samples in seconds, and their count."""
    ordered = sorted(samples)
    return {"p50_ms": ms(statistics.median(ordered)), "p99_ms": ms(percentile(ordered, 0.99)), "n": len(ordered)}


def spread(values: Sequence[float]) -> dict[str, float]:
    """min, median and max over rounds."""
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "max": round(max(values), 3)}


def network_ready(kube: Kube, name: str) -> bool:
    """The PodNetwork `name` exists with condition Ready True."""
    obj = kube.find(POD_NETWORKS, name)
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


class ControllerProcess:
    """`multinet controller` as a child process (of the tree in `cwd`: `python -m`
    puts the working directory first on the path). Up once its webhooks are
    registered and the default PodNetwork is Ready; stopping it removes the
    webhook configurations it registered, so no pod waits on a webhook that
    no longer answers."""

    def __init__(self, kube: Kube, kubeconfig: str, log: Path, workers: int = 16, cwd: Path | None = None) -> None:
        self.kube, self.log, self.cwd = kube, log, cwd
        self.argv = [sys.executable, "-m", "multinet.cli", "controller", "--kubeconfig", kubeconfig,
                     "--workers", str(workers), "--log-level", "WARNING"]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the controller is not started"
        return self.proc.pid

    def start(self, timeout: float = 90.0) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.cwd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the controller exited with {self.proc.returncode}; see {self.log}")
            try:
                self.kube.get(MUTATING_WEBHOOKS, admission.CONFIGURATION_NAME)
                if network_ready(self.kube, "default"):
                    time.sleep(1.0)  # the webhook server listens right after registering
                    return
            except KubeError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the controller was not up after {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        remove_webhooks(self.kube, admission.CONFIGURATION_NAME)


class PodWatch:
    """Every version of one namespace's pods handed to `seen`, from a thread:
    a list, then a watch from its version. When the server ends the watch
    (it does quietly under load, and at each short timeout that keeps stop()
    prompt) the watch resumes from the last version seen; only 410 Gone
    lists again, and then `seen` gets old versions again, so it must keep
    the first of what it records. An error in the thread is raised again by
    stop()."""

    def __init__(self, core: client.CoreV1Api, namespace: str, seen: Callable[[client.V1Pod], None]) -> None:
        self.core, self.namespace, self.seen = core, namespace, seen
        self._stop, self._listed = threading.Event(), threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{namespace}", daemon=True)

    def start(self) -> None:
        """Returns once the first list is handed over (the watch opens right after)."""
        self._thread.start()
        if not self._listed.wait(30) or self._error is not None:
            raise RuntimeError(f"no list of the pods of {self.namespace}") from self._error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(20)
        if self._error is not None:
            raise RuntimeError(f"the watch of {self.namespace}'s pods failed") from self._error

    def _list(self) -> str:
        listed = self.core.list_namespaced_pod(self.namespace)
        for pod in listed.items:
            self.seen(pod)
        self._listed.set()
        assert listed.metadata is not None and listed.metadata.resource_version is not None
        return listed.metadata.resource_version

    def _run(self) -> None:
        try:
            version = self._list()
            while not self._stop.is_set():
                stream = watch.Watch()
                try:
                    for event in stream.stream(self.core.list_namespaced_pod, self.namespace, timeout_seconds=10,
                                               resource_version=version):
                        # The client yields None for a blank line of the stream; bookmarks are not asked for.
                        if event is not None and event["type"] != "BOOKMARK":
                            pod: client.V1Pod = event["object"]
                            self.seen(pod)
                            assert pod.metadata is not None and pod.metadata.resource_version is not None
                            version = pod.metadata.resource_version
                        if self._stop.is_set():
                            stream.stop()  # type: ignore[attr-defined]  # Watch.stop is missing from the kubernetes stubs
                except ApiException as err:  # 410 Gone: the version is too old; list again
                    if err.status != 410:
                        raise
                    version = self._list()
        except BaseException as err:  # noqa: BLE001  # handed to stop(), which raises it in the caller
            self._error = err
            self._listed.set()


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
