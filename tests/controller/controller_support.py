"""Shared helpers of the controller's real-apiserver tests.

- `ControllerProcess` runs `multinet controller` as a child process (so a test
  can SIGKILL it) and waits until it serves admission.
- `FakeNodes` registers Node objects that stay schedulable: Ready=True with a
  heartbeat and Lease refreshed in the background, so the node-lifecycle
  controller never taints them. They carry a taint of their own and a label,
  and our pods select and tolerate them, so no other node emulator on the
  cluster runs our pods and no other pod lands on our nodes.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller import admission
from controller.kube import Kube
from podnetwork import names

T = TypeVar("T")
NODE_LABEL = "multinet.io/test-nodes"
NODE_TAINT = "multinet.io/test-nodes"
REPO = Path(__file__).resolve().parents[2]


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.2) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def suffix() -> str:
    return uuid.uuid4().hex[:6]


class ControllerProcess:
    def __init__(self, kubeconfig: str, log_path: Path, *extra: str) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.kube = Kube.from_kubeconfig(kubeconfig)

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "controller", "--kubeconfig", self.kubeconfig,
             "--resync-seconds", "5", "--sweep-seconds", "10", *self.extra],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wait_for("the controller to register its webhooks", self._serving, timeout=90)

    def _serving(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"controller exited with {self.proc.returncode}; see {self.log_path}")
        try:
            config = self.kube.admission.read_mutating_webhook_configuration(admission.CONFIGURATION_NAME)
        except ApiException:
            return False
        url = config.webhooks[0].client_config.url or ""
        return self._port_open(url)

    @staticmethod
    def _port_open(url: str) -> bool:
        import socket
        host_port = url.split("//", 1)[1].split("/", 1)[0]
        host, port = host_port.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup runs, as after a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        # Never leave fail-closed webhooks behind on a shared cluster.
        from controller.install import remove_webhooks
        remove_webhooks(self.kube, admission.CONFIGURATION_NAME)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class FakeNodes:
    def __init__(self, core: client.CoreV1Api, coordination: client.CoordinationV1Api, count: int = 2) -> None:
        self.core = core
        self.coordination = coordination
        self.group = f"api-{suffix()}"
        self.names = [f"mna-{self.group}-{i}" for i in range(count)]
        self._stop = threading.Event()
        for name in self.names:
            self._create(name)
        self._thread = threading.Thread(target=self._heartbeat, daemon=True)
        self._thread.start()

    def _create(self, name: str) -> None:
        self.core.create_node(client.V1Node(
            metadata=client.V1ObjectMeta(name=name, labels={NODE_LABEL: self.group,
                                                            "kubernetes.io/hostname": name}),
            spec=client.V1NodeSpec(taints=[client.V1Taint(key=NODE_TAINT, value=self.group, effect="NoSchedule")]),
        ))
        self._refresh(name)

    def _refresh(self, name: str) -> None:
        now = _now()
        capacity = {"cpu": "64", "memory": "256Gi", "pods": "2000"}
        status = {"status": {
            "capacity": capacity, "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "test node", "lastHeartbeatTime": now.isoformat(),
                            "lastTransitionTime": now.isoformat()}],
        }}
        self.core.patch_node_status(name, status)
        lease = client.V1Lease(metadata=client.V1ObjectMeta(name=name, namespace="kube-node-lease"),
                               spec=client.V1LeaseSpec(holder_identity=name, lease_duration_seconds=40,
                                                       renew_time=now))
        try:
            self.coordination.replace_namespaced_lease(name, "kube-node-lease", lease)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", lease)

    def _heartbeat(self) -> None:
        while not self._stop.wait(10):
            for name in self.names:
                try:
                    self._refresh(name)
                except ApiException:
                    pass  # the next beat tries again; a missed one is harmless within 40 s

    def pod_placement(self) -> dict[str, Any]:
        """What our pods add to their spec to land only on these nodes."""
        return {"nodeSelector": {NODE_LABEL: self.group},
                "tolerations": [{"key": NODE_TAINT, "operator": "Equal", "value": self.group,
                                 "effect": "NoSchedule"}]}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(15)
        for name in self.names:
            for delete in (lambda: self.core.delete_node(name),
                           lambda: self.coordination.delete_namespaced_lease(name, "kube-node-lease")):
                try:
                    delete()
                except ApiException as exc:
                    if exc.status != 404:
                        raise


def pod_manifest(name: str, networks: list[dict[str, Any]] | None, placement: dict[str, Any],
                 **annotations: str) -> dict[str, Any]:
    ann = dict(annotations)
    if networks is not None:
        import json
        ann[names.NETWORKS_ANNOTATION] = json.dumps(networks)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": ann},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                     "terminationGracePeriodSeconds": 0, **placement}}
