"""A node emulator: it stands where kubelet and a container runtime would.

It registers its Node and keeps the node's Lease fresh, creates each pod
sandbox bound to it as a network namespace, calls the CNI plugins exactly as a
runtime does (CNI 1.1 environment and stdin, executed inside the node's host
network namespace), starts the pod's server inside the sandbox, and reports
pod status, Ready including the pod's readiness gates, as kubelet does.

Every sandbox is recorded on disk before it is made, so after a crash the
emulator tears down exactly what it had started.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from agent import delegate
from cni.spec import CniError
from multinet.cluster.processes import ProcessRecord, spawn, stop
from podnetwork.names import NODE_PREFIX

log = logging.getLogger("multinet.node")

KUBELET_VERSION = "v1.34.12"
LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 10
RETRY_SECONDS = 3.0
NETNS_DIR = "/var/run/netns"


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sandbox_netns(node: str, pod_uid: str) -> str:
    digest = hashlib.sha256(pod_uid.encode()).hexdigest()[:10]
    return f"{NODE_PREFIX}{node}-{digest}"


def node_body(name: str, internal_ip: str, pod_cidr: str | None) -> dict[str, Any]:
    capacity = {"cpu": "8", "memory": "32Gi", "pods": "250"}
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "multinet.io/emulated": "true",
            },
        },
        "spec": {},
    }
    if pod_cidr:
        body["spec"] = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}
    body["status"] = {
        "capacity": capacity,
        "allocatable": capacity,
        "addresses": [{"type": "InternalIP", "address": internal_ip}, {"type": "Hostname", "address": name}],
        "nodeInfo": {
            "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "", "operatingSystem": "linux",
            "architecture": "amd64", "containerRuntimeVersion": "multinet-emulator://0.1",
            "osImage": "multinet node emulator", "kernelVersion": "", "machineID": "", "systemUUID": "",
            "bootID": "",
        },
        "conditions": [ready_node_condition()],
    }
    return body


def ready_node_condition() -> dict[str, str]:
    stamp = now()
    return {
        "type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "multinet node emulator is posting ready status",
        "lastHeartbeatTime": stamp, "lastTransitionTime": stamp,
    }


def pod_ready(pod: Mapping[str, Any], containers_ready: bool) -> tuple[bool, str]:
    """Kubelet's rule: Ready iff containers are ready and every readiness gate's condition is True."""
    if not containers_ready:
        return False, "ContainersNotReady"
    conditions = {c["type"]: c.get("status") for c in pod.get("status", {}).get("conditions") or []}
    gates = [g["conditionType"] for g in pod.get("spec", {}).get("readinessGates") or []]
    missing = [g for g in gates if conditions.get(g) != "True"]
    if missing:
        return False, "ReadinessGatesNotReady"
    return True, ""


def container_ports(pod: Mapping[str, Any]) -> tuple[list[int], list[int]]:
    tcp, udp = [], []
    for c in pod.get("spec", {}).get("containers") or []:
        for p in c.get("ports") or []:
            (udp if p.get("protocol") == "UDP" else tcp).append(int(p["containerPort"]))
    return sorted(set(tcp)), sorted(set(udp))


def result_ips(result: Mapping[str, Any] | None, ifname: str) -> list[str]:
    """The addresses a CNI result gives the sandbox interface `ifname`, without prefix length."""
    if not result:
        return []
    interfaces = result.get("interfaces") or []
    out = []
    for ip in result.get("ips") or []:
        index = ip.get("interface")
        if index is None or (0 <= index < len(interfaces) and interfaces[index].get("name") == ifname):
            out.append(ip["address"].split("/")[0])
    return out


@dataclass
class SandboxRecord:
    pod_uid: str
    namespace: str
    name: str
    netns: str
    container_id: str
    result: Any = None
    server: dict[str, Any] | None = None
    started: bool = False


class NodeEmulator:
    def __init__(
        self,
        api: client.ApiClient,
        name: str,
        host_netns: str,
        internal_ip: str,
        conf_dir: Path,
        bin_dirs: Sequence[Path],
        state_dir: Path,
        pod_cidr: str | None = None,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.name = name
        self.host_netns = host_netns
        self.internal_ip = internal_ip
        self.conf_dir = conf_dir
        self.bin_dirs = list(bin_dirs)
        self.state_dir = state_dir
        self.pod_cidr = pod_cidr
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pod")
        self.locks: dict[str, threading.Lock] = {}
        self.locks_guard = threading.Lock()
        (state_dir / "pods").mkdir(parents=True, exist_ok=True)

    # --- node ------------------------------------------------------------------

    def register(self) -> None:
        body = node_body(self.name, self.internal_ip, self.pod_cidr)
        try:
            self.core.create_node(body)
        except ApiException as err:
            if err.status != 409:
                raise
        self.core.patch_node_status(self.name, {"status": body["status"]})
        log.info("node %s registered (InternalIP %s)", self.name, self.internal_ip)

    def heartbeat(self) -> None:
        lease_body = {
            "metadata": {"name": self.name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS,
                     "renewTime": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
        }
        try:
            self.coordination.patch_namespaced_lease(self.name, "kube-node-lease", lease_body)
        except ApiException as err:
            if err.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", lease_body)
        condition = ready_node_condition()
        current = self.core.read_node_status(self.name)
        for c in current.status.conditions or []:
            if c.type == "Ready" and c.status == "True" and c.last_transition_time:
                condition["lastTransitionTime"] = c.last_transition_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.core.patch_node_status(self.name, {"status": {"conditions": [condition]}})

    def _heartbeat_loop(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat()
            except (ApiException, OSError) as err:  # the apiserver may restart; keep trying
                log.warning("heartbeat failed: %s", err)

    # --- pods ------------------------------------------------------------------

    def _record_path(self, uid: str) -> Path:
        return self.state_dir / "pods" / f"{uid}.json"

    def _save(self, record: SandboxRecord) -> None:
        path = self._record_path(record.pod_uid)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record)))
        tmp.replace(path)

    def _load(self, uid: str) -> SandboxRecord | None:
        try:
            return SandboxRecord(**json.loads(self._record_path(uid).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _lock(self, uid: str) -> threading.Lock:
        with self.locks_guard:
            return self.locks.setdefault(uid, threading.Lock())

    def _invocation(self, record: SandboxRecord) -> delegate.Invocation:
        args = {
            "K8S_POD_NAMESPACE": record.namespace,
            "K8S_POD_NAME": record.name,
            "K8S_POD_INFRA_CONTAINER_ID": record.container_id,
            "K8S_POD_UID": record.pod_uid,
        }
        return delegate.Invocation(
            container_id=record.container_id,
            netns=f"{NETNS_DIR}/{record.netns}",
            ifname="eth0",
            args=";".join(["IgnoreUnknown=1", *(f"{k}={v}" for k, v in args.items())]),
            path=[str(d) for d in self.bin_dirs],
            # CNI plugins run in the node's host network namespace, as on a real node.
            host_netns=self.host_netns,
        )

    def _network(self) -> delegate.ConfList:
        """The network configuration a runtime uses: the first in the conf dir."""
        first = next(delegate.conflists(self.conf_dir), None)
        if first is None:
            raise FileNotFoundError(f"no CNI network configuration in {self.conf_dir}")
        return first

    def start_pod(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        record = self._load(uid)
        if record and record.started:
            self.update_ready(pod)
            return
        record = record or SandboxRecord(
            uid, meta["namespace"], meta["name"], sandbox_netns(self.name, uid), uid.replace("-", "")
        )
        self._save(record)  # intent first: a crash from here on is cleaned up by teardown
        if not Path(NETNS_DIR, record.netns).exists():
            # `ip` rather than pyroute2 here: pyroute2's netns helpers fork,
            # which can deadlock in this thread pool.
            subprocess.run(["ip", "netns", "add", record.netns], check=True, capture_output=True)
            # A runtime brings the sandbox's loopback up (containerd's loopback plugin).
            subprocess.run(["ip", "-n", record.netns, "link", "set", "lo", "up"], check=True, capture_output=True)
        try:
            result = delegate.run_chain("ADD", self._network(), self._invocation(record), None)
        except (CniError, FileNotFoundError) as err:
            self._event(pod, "FailedCreatePodSandBox", f"network setup failed: {err}", warning=True)
            self.teardown(record)
            raise
        record.result = result
        record.server = asdict(self._start_server(pod, record))
        record.started = True
        self._save(record)
        self._report_running(pod, result)

    def _start_server(self, pod: Mapping[str, Any], record: SandboxRecord) -> ProcessRecord:
        tcp, udp = container_ports(pod)
        ready = self.state_dir / "pods" / f"{record.pod_uid}.ready"
        ready.unlink(missing_ok=True)
        argv = ["ip", "netns", "exec", record.netns, sys.executable, "-m", "multinet.cluster.podserver",
                "--name", record.name, f"--ready-file={ready}",
                *(f"--tcp={p}" for p in tcp), *(f"--udp={p}" for p in udp)]
        server = spawn(f"pod-{record.pod_uid}", argv, self.state_dir / "logs" / f"{record.namespace}_{record.name}.log")
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        ready.unlink(missing_ok=True)
        return server

    def _report_running(self, pod: Mapping[str, Any], result: Any) -> None:
        ips = result_ips(result, "eth0")
        stamp = now()
        ready, reason = pod_ready(pod, containers_ready=True)
        containers = [
            {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": True, "restartCount": 0,
             "started": True, "state": {"running": {"startedAt": stamp}}, "containerID": f"emulated://{pod['metadata']['uid']}"}
            for c in pod["spec"].get("containers", [])
        ]
        status: dict[str, Any] = {
            "phase": "Running",
            "hostIP": self.internal_ip,
            "hostIPs": [{"ip": self.internal_ip}],
            "startTime": stamp,
            "containerStatuses": containers,
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": stamp},
                {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": stamp},
                self._ready_condition(ready, reason, stamp),
            ],
        }
        if ips:
            status["podIP"] = ips[0]
            status["podIPs"] = [{"ip": ip} for ip in ips]
        self.core.patch_namespaced_pod_status(pod["metadata"]["name"], pod["metadata"]["namespace"], {"status": status})

    @staticmethod
    def _ready_condition(ready: bool, reason: str, stamp: str) -> dict[str, str]:
        condition = {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": stamp}
        if reason:
            condition["reason"] = reason
        return condition

    def update_ready(self, pod: Mapping[str, Any]) -> None:
        """Recompute Ready when a readiness gate's condition changed."""
        ready, reason = pod_ready(pod, containers_ready=True)
        current = {c["type"]: c.get("status") for c in pod.get("status", {}).get("conditions") or []}
        if current.get("Ready") == ("True" if ready else "False"):
            return
        condition = self._ready_condition(ready, reason, now())
        self.core.patch_namespaced_pod_status(
            pod["metadata"]["name"], pod["metadata"]["namespace"], {"status": {"conditions": [condition]}}
        )

    def teardown(self, record: SandboxRecord) -> None:
        """Undo a sandbox: server, CNI DEL (keeps going past errors), netns, record."""
        if record.server:
            stop(ProcessRecord(**{**record.server, "argv": tuple(record.server["argv"])}))
        try:
            delegate.run_chain("DEL", self._network(), self._invocation(record), record.result)
        except (CniError, FileNotFoundError) as err:  # keep undoing the rest
            log.warning("pod %s/%s: %s", record.namespace, record.name, err)
        if Path(NETNS_DIR, record.netns).exists():
            subprocess.run(["ip", "netns", "delete", record.netns], check=True, capture_output=True)
        self._record_path(record.pod_uid).unlink(missing_ok=True)

    def stop_pod(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        record = self._load(meta["uid"])
        if record:
            self.teardown(record)
        try:  # the final delete, as kubelet does once the sandbox is gone
            self.core.delete_namespaced_pod(
                meta["name"], meta["namespace"],
                body=client.V1DeleteOptions(grace_period_seconds=0, preconditions={"uid": meta["uid"]}),
            )
        except ApiException as err:
            if err.status not in (404, 409):
                raise

    def handle(self, pod: Mapping[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock(uid):
            try:
                if pod["metadata"].get("deletionTimestamp"):
                    self.stop_pod(pod)
                elif pod.get("status", {}).get("phase") in (None, "Pending", "Running"):
                    self.start_pod(pod)
            except (ApiException, CniError, OSError, subprocess.CalledProcessError) as err:
                log.error("pod %s/%s: %s", pod["metadata"]["namespace"], pod["metadata"]["name"], err)
                if not pod["metadata"].get("deletionTimestamp"):
                    self._retry_later(pod)

    def _retry_later(self, pod: Mapping[str, Any]) -> None:
        """As kubelet does: a sandbox that failed is tried again after a pause."""
        def again() -> None:
            if self.stopping.is_set():
                return
            meta = pod["metadata"]
            try:
                fresh = self.core.read_namespaced_pod(meta["name"], meta["namespace"])
            except ApiException:
                return  # gone (or the apiserver is away: the next event retries)
            if fresh.metadata.uid == meta["uid"]:
                self.pool.submit(self.handle, self.core.api_client.sanitize_for_serialization(fresh))

        timer = threading.Timer(RETRY_SECONDS, again)
        timer.daemon = True
        timer.start()

    def _event(self, pod: Mapping[str, Any], reason: str, message: str, warning: bool = False) -> None:
        meta = pod["metadata"]
        try:
            self.core.create_namespaced_event(meta["namespace"], {
                "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
                "involvedObject": {"kind": "Pod", "name": meta["name"], "namespace": meta["namespace"],
                                   "uid": meta["uid"], "apiVersion": "v1"},
                "reason": reason, "message": message, "type": "Warning" if warning else "Normal",
                "source": {"component": "multinet-node", "host": self.name},
                "firstTimestamp": now(), "lastTimestamp": now(), "count": 1,
            })
        except ApiException as err:
            log.warning("event for %s/%s not recorded: %s", meta["namespace"], meta["name"], err)

    def sweep_orphans(self, live_uids: set[str]) -> None:
        """Tear down sandboxes whose pod no longer exists (deleted while we were down)."""
        for path in (self.state_dir / "pods").glob("*.json"):
            record = self._load(path.stem)
            if record and record.pod_uid not in live_uids:
                log.info("removing orphaned sandbox of %s/%s", record.namespace, record.name)
                self.teardown(record)

    def run(self) -> None:
        self.register()
        self.heartbeat()
        threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True).start()
        selector = f"spec.nodeName={self.name}"
        while not self.stopping.is_set():
            listed = self.core.list_pod_for_all_namespaces(field_selector=selector)
            pods = self.core.api_client.sanitize_for_serialization(listed.items)
            self.sweep_orphans({p["metadata"]["uid"] for p in pods})
            for pod in pods:
                self.pool.submit(self.handle, pod)
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.core.list_pod_for_all_namespaces, field_selector=selector,
                    resource_version=listed.metadata.resource_version, timeout_seconds=300,
                ):
                    if self.stopping.is_set():
                        break
                    pod = self.core.api_client.sanitize_for_serialization(event["object"])
                    if event["type"] == "DELETED":
                        self.pool.submit(self._forget, pod)
                    else:
                        self.pool.submit(self.handle, pod)
            except ApiException as err:
                if err.status != 410:  # 410 Gone: relist
                    log.warning("watch failed: %s", err)
                    time.sleep(1)

    def shutdown(self) -> None:
        """Stop: tear down every sandbox this node recorded."""
        self.stopping.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.sweep_orphans(set())

    def _forget(self, pod: Mapping[str, Any]) -> None:
        """The pod object is gone (deleted with grace 0 by someone else): clean the sandbox."""
        with self._lock(pod["metadata"]["uid"]):
            record = self._load(pod["metadata"]["uid"])
            if record:
                self.teardown(record)
