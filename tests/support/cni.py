"""Helpers for the agent's tests and benchmark: throwaway namespaces, an agent
process, the plugin invoked as a runtime does, and cluster objects.

Everything created here carries the caller's prefix and is removed by the
same object that made it (never by name matching).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kube import Kube
from podnetwork.names import (
    ALLOCATIONS_ANNOTATION,
    GROUP,
    PARAMS_GROUP,
    PARAMS_KIND,
    PARAMS_PLURAL,
    PARAMS_VERSION,
    POD_NETWORK_ATTACHMENT_PLURAL,
    POD_NETWORK_PLURAL,
    READINESS_CONDITION,
    VERSION,
)
from tests.support.wait import default_service_account

# The prefix of everything the CNI tests create on this machine (namespaces,
# links, cluster objects); $MULTINET_TEST_PREFIX sets another, so two runs on
# one machine never share names.
TEST_PREFIX = os.environ.get("MULTINET_TEST_PREFIX") or "mnc"


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


class Namespaces:
    """Named network namespaces made by one test, all removed at close()."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.made: list[str] = []

    def new(self, tag: str) -> str:
        name = f"{self.prefix}-{tag}-{secrets.token_hex(3)}"
        run("ip", "netns", "add", name)
        self.made.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def close(self) -> None:
        for name in reversed(self.made):
            run("ip", "netns", "del", name, check=False)
        self.made.clear()


def plugin_binary() -> str:
    """The installed `multinet-cni` console script next to this interpreter."""
    candidate = Path(sys.executable).with_name("multinet-cni")
    found = str(candidate) if candidate.exists() else shutil.which("multinet-cni")
    if not found:
        raise RuntimeError("multinet-cni is not installed (pip install -e .)")
    return found


@dataclass(frozen=True)
class PluginResult:
    exit: int
    out: dict[str, Any]
    stderr: str


def invoke(binary: str, env: Mapping[str, str], config: Mapping[str, Any]) -> PluginResult:
    """Call a CNI plugin exactly as a runtime does: CNI_* env, config on stdin."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    proc = subprocess.run(
        [binary], input=json.dumps(config), env=full_env, capture_output=True, text=True, timeout=180
    )
    out = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return PluginResult(proc.returncode, out, proc.stderr)


def cni_env(command: str, container_id: str, netns: str, ifname: str = "eth0",
            pod: tuple[str, str, str] | None = None, path: str = "/usr/lib/cni") -> dict[str, str]:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_IFNAME": ifname, "CNI_PATH": path}
    if netns:
        env["CNI_NETNS"] = f"/var/run/netns/{netns}" if "/" not in netns else netns
    if pod is not None:
        env["CNI_ARGS"] = f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod[0]};K8S_POD_NAME={pod[1]};K8S_POD_UID={pod[2]}"
    return env


class AgentProcess:
    """`multinet agent` as its own process (killable like the real one)."""

    def __init__(self, workdir: Path, node: str, kubeconfig: Path, extra: Iterable[str] = ()) -> None:
        self.socket = workdir / "agent.sock"
        self.state_dir = workdir / "state"
        self.log = workdir / "agent.log"
        self.argv = [
            sys.executable, "-m", "multinet.cli", "agent", "--node", node, "--kubeconfig", str(kubeconfig),
            "--socket", str(self.socket), "--state-dir", str(self.state_dir), *extra,
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str, wait: bool = True) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*self.argv, *extra], stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until STATUS through the socket succeeds (caches synced)."""
        deadline = time.monotonic() + timeout
        status = self.conf()
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            if self.socket.exists():
                result = invoke(plugin_binary(), {"CNI_COMMAND": "STATUS", "CNI_PATH": "/usr/lib/cni"}, status)
                if result.exit == 0:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"agent not ready: {self.log.read_text()[-2000:]}")

    def conf(self, version: str = "1.1.0", /, **extra: Any) -> dict[str, Any]:
        # version is positional only: every keyword is a key of the network config.
        return {"cniVersion": version, "name": "multinet", "type": "multinet-cni", "socket": str(self.socket), **extra}

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# --- cluster objects ---------------------------------------------------------------


def ensure_crds(api: client.ApiClient) -> list[str]:
    """Install the API package's CRDs the agent reads (PodNetwork,
    PodNetworkAttachment, NetworkParams) when the cluster lacks them; an
    installed one is left as it is (whoever installed it owns it). Returns
    the names it created."""
    from podnetwork.crds import all_crds

    ext = client.ApiextensionsV1Api(api)
    created = []
    for file in ("podnetworks.yaml", "podnetworkattachments.yaml", "networkparams.yaml"):
        crd = all_crds()[file]
        try:
            ext.read_custom_resource_definition(crd["metadata"]["name"])
            continue
        except ApiException as err:
            if err.status != 404:
                raise
        try:
            ext.create_custom_resource_definition(crd)  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        except ApiException as err:
            if err.status != 409:  # created meanwhile by another test run
                raise
            continue
        created.append(crd["metadata"]["name"])
    for name in created:
        _wait_established(ext, name)
    return created


def _wait_established(ext: client.ApiextensionsV1Api, name: str) -> None:
    for _ in range(100):
        crd = ext.read_custom_resource_definition(name)
        conditions = crd.status.conditions if crd.status is not None else None
        if any(c.type == "Established" and c.status == "True" for c in conditions or []):
            return
        time.sleep(0.1)
    raise TimeoutError(f"CRD {name} not established")


def _retrying(call: Any, attempts: int = 5) -> Any:
    """Retry what the apiserver answers with 429/5xx: on a shared cluster an
    admission webhook may be restarting (failurePolicy Fail makes that a 500)."""
    for attempt in range(attempts):
        try:
            return call()
        except ApiException as err:
            if attempt == attempts - 1 or not (err.status == 429 or (err.status is not None and err.status >= 500)):
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


class ClusterObjects:
    """Kubernetes objects made by one test module, deleted at close()."""

    def __init__(self, api: client.ApiClient, prefix: str) -> None:
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.kube = Kube(api)
        self.prefix = prefix
        self._undo: list[Any] = []

    def namespace(self) -> str:
        name = f"{self.prefix}-{secrets.token_hex(3)}"
        self.core.create_namespace({"metadata": {"name": name}})  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        self._undo.append(lambda: self.core.delete_namespace(name))
        # Pods are refused until the controller manager made the namespace's
        # default service account (a test that creates a pod at once would flake).
        default_service_account(self.kube, name)
        return name

    def node(self) -> str:
        name = f"{self.prefix}-node-{secrets.token_hex(3)}"
        self.core.create_node({"metadata": {"name": name}})  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        self._undo.append(lambda: self.core.delete_node(name))
        return name

    def params(self, name: str, spec: Mapping[str, Any]) -> dict[str, str]:
        """A NetworkParams; returns a parametersRefs entry naming it."""
        body = {"apiVersion": f"{PARAMS_GROUP}/{PARAMS_VERSION}", "kind": PARAMS_KIND,
                "metadata": {"name": name}, "spec": dict(spec)}
        self.custom.create_cluster_custom_object(PARAMS_GROUP, PARAMS_VERSION, PARAMS_PLURAL, body)
        self._undo.append(lambda: self.custom.delete_cluster_custom_object(PARAMS_GROUP, PARAMS_VERSION, PARAMS_PLURAL, name))
        return {"group": PARAMS_GROUP, "kind": PARAMS_KIND, "name": name}

    def attachment(self, namespace: str, name: str, network: str, params: dict[str, str] | None) -> str:
        """A PodNetworkAttachment, with its own parametersRefs when given."""
        spec: dict[str, Any] = {"podNetworkName": network}
        if params is not None:
            spec["parametersRefs"] = [params]
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PodNetworkAttachment",
                "metadata": {"name": name, "namespace": namespace}, "spec": spec}
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, POD_NETWORK_ATTACHMENT_PLURAL, body)
        self._undo.append(lambda: self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, namespace, POD_NETWORK_ATTACHMENT_PLURAL, name))
        return name

    def network(self, name: str, params: Mapping[str, Any]) -> str:
        """A PodNetwork with its own NetworkParams (of the same name)."""
        ref = self.params(name, params)
        network = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PodNetwork", "metadata": {"name": name},
                   "spec": {"enabled": True, "provider": "multinet.io", "parametersRefs": [ref]}}
        self.custom.create_cluster_custom_object(GROUP, VERSION, POD_NETWORK_PLURAL, network)
        self._undo.append(lambda: self.custom.delete_cluster_custom_object(GROUP, VERSION, POD_NETWORK_PLURAL, name))
        return name

    def bare_network(self, name: str) -> str:
        """A PodNetwork without parameters: an address-less network."""
        network = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PodNetwork", "metadata": {"name": name},
                   "spec": {"enabled": True, "provider": "multinet.io"}}
        self.custom.create_cluster_custom_object(GROUP, VERSION, POD_NETWORK_PLURAL, network)
        self._undo.append(lambda: self.custom.delete_cluster_custom_object(GROUP, VERSION, POD_NETWORK_PLURAL, name))
        return name

    def pod(self, namespace: str, name: str, node: str, allocations: list[dict[str, Any]] | None) -> str:
        """A pod given the allocations the controller would write, then bound to
        `node`, in that order as in the real flow (the agent never sees a bound
        pod before its allocations). No scheduler picks it up: it names none
        that exists, and the test binds it itself."""
        body = {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "schedulerName": f"{self.prefix}-bound-by-test",
                "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
                "readinessGates": [{"conditionType": READINESS_CONDITION}],
                "tolerations": [{"operator": "Exists"}],
            },
        }
        pod = _retrying(lambda: self.core.create_namespaced_pod(namespace, body))  # type: ignore[arg-type]  # kubernetes-stubs: a body may be a plain dict too
        # No kubelet confirms a graceful deletion here: delete at once.
        self._undo.append(lambda: self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0))
        if allocations is not None:
            # After creation: admission refuses the annotation from anyone at create.
            patch = {"metadata": {"annotations": {ALLOCATIONS_ANNOTATION: json.dumps(allocations)}}}
            _retrying(lambda: self.core.patch_namespaced_pod(name, namespace, patch))
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        # Raw response: the client's Binding model fails to read the empty reply.
        _retrying(lambda: self.core.create_namespaced_pod_binding(name, namespace, binding, _preload_content=False))  # type: ignore[arg-type, call-arg]  # kubernetes-stubs: a body may be a plain dict, and _preload_content is a real keyword of every call
        return str(pod.metadata.uid)

    def on_close(self, undo: Any) -> None:
        """Also undo `undo()` at close() (for objects made by other means)."""
        self._undo.append(undo)

    def close(self) -> None:
        for undo in reversed(self._undo):
            try:
                undo()
            except ApiException as err:
                if err.status != 404:
                    raise
        self._undo.clear()


@dataclass
class Node:
    """One emulated node: host and IPU namespaces, an uplink, an agent, a k8s Node."""

    name: str
    namespace: str  # the Kubernetes namespace of the test pods
    host: str
    ipu: str
    uplink: str
    agent: AgentProcess
    objects: ClusterObjects
    netns: Namespaces
    kubeconfig: Path
    plugin: str = ""  # the plugin binary to call (default: the console script)

    def pod(self, name: str, allocations: list[dict[str, Any]] | None) -> tuple[str, str, str]:
        uid = self.objects.pod(self.namespace, name, self.name, allocations)
        return self.namespace, name, uid

    def cni(self, command: str, netns: str, pod: tuple[str, str, str], container: str,
            version: str = "1.1.0", **conf: Any) -> PluginResult:
        """The plugin binary invoked for this node's agent, as the runtime would."""
        env = cni_env(command, container, netns, pod=pod)
        return invoke(self.plugin or plugin_binary(), env, self.agent.conf(version, **conf))


def alloc(network: str, ifname: str, ips: list[str], gw4: bool = False, gw6: bool = False,
          attachment: str | None = None) -> dict[str, Any]:
    """One entry of the allocations annotation, as the controller writes it."""
    entry = {"podNetworkName": network, "interfaceName": ifname, "networkId": 100 + len(network),
             "ips": ips, "isDefaultGW4": gw4, "isDefaultGW6": gw6}
    if attachment:
        entry["podNetworkAttachmentName"] = attachment
    return entry


def link(netns: str | None, name: str) -> Any:
    """The state of a link, or None when it does not exist."""
    from agent import links

    with links.rtnl(netns) as ipr:
        return links.link_state(ipr, name)


# This machine has no ping binary: an ICMP echo over a raw socket, run inside
# the namespace by a child interpreter. Exit 0 when a reply arrives.
_PING = r"""
import os, select, socket, struct, sys, time
dst, count, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
v6 = ":" in dst
family, proto, kind = (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128) if v6 else (socket.AF_INET, socket.IPPROTO_ICMP, 8)
s = socket.socket(family, socket.SOCK_RAW, proto)
ident = os.getpid() & 0xFFFF
def csum(b):
    b += b"\0" * (len(b) % 2)
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b)); t = (t >> 16) + (t & 0xFFFF); t += t >> 16
    return ~t & 0xFFFF
for seq in range(count):
    body = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + b"multinet"
    if not v6:
        body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    s.sendto(body, (dst, 0))
    end = time.monotonic() + wait
    while time.monotonic() < end:
        if not select.select([s], [], [], end - time.monotonic())[0]:
            break
        data, _ = s.recvfrom(2048)
        icmp = data if v6 else data[(data[0] & 0x0F) * 4:]
        if icmp[0] == (129 if v6 else 0) and struct.unpack("!H", icmp[4:6])[0] == ident:
            sys.exit(0)
sys.exit(1)
"""


def ping(netns: str, address: str, count: int = 2, wait: float = 2.0) -> bool:
    """True when `address` answers an ICMP echo sent from inside `netns`."""
    proc = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", _PING, address, str(count), str(wait)],
        capture_output=True, timeout=count * wait + 10,
    )
    return proc.returncode == 0
