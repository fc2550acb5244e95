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
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

import kube
from controller import admission
from tests.support.wait import wait_for
from kube.kinds import IP_ALLOCATIONS, NETWORK_PARAMS, POD_NETWORK_ATTACHMENTS, POD_NETWORKS
from kube.resources import PODS
from podnetwork import names

T = TypeVar("T")
NODE_LABEL = "multinet.io/test-nodes"
NODE_TAINT = "multinet.io/test-nodes"
REPO = Path(__file__).resolve().parents[2]


_BY_PLURAL = {r.plural: r for r in (POD_NETWORKS, POD_NETWORK_ATTACHMENTS, NETWORK_PARAMS, IP_ALLOCATIONS)}


class Kube(kube.Kube):
    """The product's adapter, plus the generated typed clients (a test acts as any client
    would, and sees the client's own ApiException) and short helpers by group and plural."""

    @classmethod
    def from_kubeconfig(cls, path: str | None, pool_size: int = 32) -> Kube:
        """The product's constructor, typed as this class: kube.Kube annotates it as its own."""
        made = super().from_kubeconfig(path, pool_size)
        assert isinstance(made, cls)
        return made

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def admission(self) -> client.AdmissionregistrationV1Api:
        return client.AdmissionregistrationV1Api(self.api)

    @property
    def discovery(self) -> client.DiscoveryV1Api:
        return client.DiscoveryV1Api(self.api)

    def plain(self, obj: Any) -> dict[str, Any]:
        """A typed client model as the plain JSON dict the apiserver sent."""
        return dict(self.api.sanitize_for_serialization(obj))

    @staticmethod
    def _client(call: Callable[[], T]) -> T:
        """Raise what the generated client raises (tests read its status and body): the
        ApiException every typed error is chained to."""
        try:
            return call()
        except kube.KubeError as exc:
            if isinstance(exc.__cause__, ApiException):
                raise exc.__cause__ from None
            raise

    def get_cluster(self, group: str, plural: str, name: str) -> dict[str, Any] | None:
        return self._client(lambda: self.find(_BY_PLURAL[plural], name))

    def get_namespaced(self, group: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._client(lambda: self.find(_BY_PLURAL[plural], name, namespace))

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._client(lambda: self.find(PODS, name, namespace))

    def list_cluster(self, group: str, plural: str) -> list[dict[str, Any]]:
        return self._client(lambda: self.list(_BY_PLURAL[plural]))

    def create_cluster(self, group: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._client(lambda: self.create(_BY_PLURAL[plural], body))

    def patch_cluster(self, group: str, plural: str, name: str, patch: dict[str, Any],
                      status: bool = False) -> dict[str, Any]:
        return self._client(lambda: self.patch(_BY_PLURAL[plural], name, patch,
                                               subresource="status" if status else None))

    def patch_namespaced(self, group: str, plural: str, namespace: str, name: str, patch: dict[str, Any],
                         status: bool = False) -> dict[str, Any]:
        return self._client(lambda: self.patch(_BY_PLURAL[plural], name, patch, namespace,
                                               subresource="status" if status else None))


def status_of(exc: ApiException) -> dict[str, Any]:
    """The Status object the apiserver refused a request with."""
    assert exc.body is not None, f"the refusal carries no Status: {exc}"
    status: dict[str, Any] = json.loads(exc.body)
    return status


def suffix() -> str:
    return uuid.uuid4().hex[:6]


def active_lease_holder(kube: Kube) -> str | None:
    """Who holds the controller's leader lease right now (unexpired), if anyone."""
    from controller.leader import LEASE_NAME, LEASE_NAMESPACE
    try:
        lease = client.CoordinationV1Api(kube.api).read_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE)
    except ApiException:
        return None
    spec = lease.spec
    if not spec or not spec.holder_identity or spec.renew_time is None:
        return None
    expires = spec.renew_time + datetime.timedelta(seconds=spec.lease_duration_seconds or 15)
    return str(spec.holder_identity) if expires > _now() else None


class ControllerProcess:
    """Our own controller, or the one the running cluster already has (`cluster up --nodes`).

    With an external one, tests use it as it is and never stop it or remove its
    webhooks; tests that must kill or restart a controller skip, saying why.
    """

    def __init__(self, kubeconfig: str, log_path: Path, *extra: str) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.kube = Kube.from_kubeconfig(kubeconfig)
        self.tmpdir = log_path.parent / "controller-tmp"  # its TMPDIR: what it leaves there shows
        self.external: str | None = None
        self.metrics_url = ""  # where its /metrics is, when started with --metrics-port
        self._started = False

    def start(self) -> None:
        if not self._started:
            # Only on the first start: after our own kill, the lease is still our dead replica's.
            self._started = True
            self.external = active_lease_holder(self.kube)
        if self.external:
            wait_for("the cluster's controller to serve admission", self._external_serving, timeout=90)
            return
        log = self.log_path.open("ab")
        self.tmpdir.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "multinet.cli", "controller", "--kubeconfig", self.kubeconfig,
             "--resync-seconds", "5", "--sweep-seconds", "10", *self.extra],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(self.tmpdir)})
        wait_for("the controller to register its webhooks", self._serving, timeout=90)

    def _external_serving(self) -> bool:
        try:
            config = self.kube.admission.read_mutating_webhook_configuration(admission.CONFIGURATION_NAME)
        except ApiException:
            return False
        assert config.webhooks, "the controller's webhook configuration has no webhooks"
        return self._port_open(config.webhooks[0].client_config.url or "")

    def require_own(self) -> None:
        """Skip the calling test when the controller is the running cluster's, not ours."""
        if self.external:
            import pytest
            pytest.skip(f"the running cluster's controller ({self.external}) holds the leader lease; "
                        "kill/restart tests need a controller of their own")

    def _serving(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"controller exited with {self.proc.returncode}; see {self.log_path}")
        try:
            config = self.kube.admission.read_mutating_webhook_configuration(admission.CONFIGURATION_NAME)
        except ApiException:
            return False
        assert config.webhooks, "the controller's webhook configuration has no webhooks"
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
        self.require_own()
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None

    def stop(self) -> None:
        if self.external:
            return  # not ours: leave it and its webhooks alone
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
            deletes: tuple[Callable[[], object], ...] = (
                lambda: self.core.delete_node(name),
                lambda: self.coordination.delete_namespaced_lease(name, "kube-node-lease"))
            for delete in deletes:
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


class Networks:
    """Creates NetworkParams / PodNetworks with unique names and deletes them after the test."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.made: list[tuple[str, str, str]] = []  # (group, plural, name)

    def params(self, spec: dict[str, Any], name: str | None = None) -> str:
        name = name or f"mna-params-{suffix()}"
        self.kube.create_cluster(names.PARAMS_GROUP, names.PARAMS_PLURAL, {
            "apiVersion": f"{names.PARAMS_GROUP}/{names.PARAMS_VERSION}", "kind": names.PARAMS_KIND,
            "metadata": {"name": name}, "spec": spec})
        self.made.append((names.PARAMS_GROUP, names.PARAMS_PLURAL, name))
        return name

    def network(self, params: str | None = None, name: str | None = None, enabled: bool = True,
                refs: list[dict[str, Any]] | None = None) -> str:
        name = name or f"mna-net-{suffix()}"
        spec: dict[str, Any] = {"enabled": enabled, "provider": names.PROVIDER}
        if params is not None:
            spec["parametersRefs"] = [{"group": names.PARAMS_GROUP, "kind": names.PARAMS_KIND, "name": params}]
        if refs is not None:
            spec["parametersRefs"] = refs
        self.kube.create_cluster(names.GROUP, names.POD_NETWORK_PLURAL, {
            "apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.POD_NETWORK_KIND,
            "metadata": {"name": name}, "spec": spec})
        self.made.append((names.GROUP, names.POD_NETWORK_PLURAL, name))
        return name

    def ready_network(self, subnet: str = "10.77.0.0/24", **family: Any) -> str:
        params = self.params({"topology": "L2", "ipv4": {"subnet": subnet, **family}})
        name = self.network(params)
        wait_for(f"PodNetwork {name} Ready", lambda: condition(self.kube, name, "Ready") == "True")
        return name

    def cleanup(self) -> None:
        for group, plural, name in reversed(self.made):
            try:
                self.kube.custom.delete_cluster_custom_object(group, names.VERSION, plural, name)
            except ApiException as exc:
                if exc.status != 404:
                    raise


def conditions(kube: Kube, name: str, plural: str = names.POD_NETWORK_PLURAL,
               namespace: str | None = None) -> dict[str, dict[str, Any]]:
    if namespace:
        obj = kube.get_namespaced(names.GROUP, plural, namespace, name)
    else:
        group = names.PARAMS_GROUP if plural == names.PARAMS_PLURAL else names.GROUP
        obj = kube.get_cluster(group, plural, name)
    if obj is None:
        return {}
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def condition(kube: Kube, name: str, type_: str, plural: str = names.POD_NETWORK_PLURAL,
              namespace: str | None = None) -> str | None:
    c = conditions(kube, name, plural, namespace).get(type_)
    return None if c is None else str(c["status"])


def pod_gated(kube: Kube, namespace: str, name: str) -> bool:
    pod = kube.get_pod(namespace, name)
    assert pod is not None
    return any(g["name"] == names.SCHEDULING_GATE for g in pod["spec"].get("schedulingGates") or [])


def allocations_of(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]] | None:
    pod = kube.get_pod(namespace, name)
    text = ((pod or {}).get("metadata", {}).get("annotations") or {}).get(names.ALLOCATIONS_ANNOTATION)
    return None if text is None else list(json.loads(text))


def events_of(kube: Kube, namespace: str, name: str) -> list[str]:
    items = kube.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    return [f"{e.reason}: {e.message}" for e in items]


def make_attachment(kube: Kube, namespace: str, name: str, network: str, params: str | None = None) -> None:
    spec: dict[str, Any] = {"podNetworkName": network}
    if params is not None:
        spec["parametersRefs"] = [{"group": names.PARAMS_GROUP, "kind": names.PARAMS_KIND, "name": params}]
    kube.custom.create_namespaced_custom_object(names.GROUP, names.VERSION, namespace,
                                                names.POD_NETWORK_ATTACHMENT_PLURAL, {
        "apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.POD_NETWORK_ATTACHMENT_KIND,
        "metadata": {"name": name}, "spec": spec})
