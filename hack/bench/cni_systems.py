"""The systems the CNI benchmark runs side by side, each behind one interface.

- multinet: the installed multinet-cni shim and its agent (eth0 routed, the
  secondary interfaces from the controller's allocations, written here as
  the controller would);
- reference: the reference bridge + host-local plugins, called once per
  interface (eth0 and each secondary), as a runtime or a meta-plugin would;
- peer: Multus v4 (thin plugin) + Whereabouts + bridge, the stack a telco
  would pick: eth0 from an inline bridge + host-local delegate, each
  secondary network a NetworkAttachmentDefinition of bridge + Whereabouts
  (addresses allocated inside ADD through the apiserver).

Every system gets its own namespace per pod, made before the timed calls.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cni.shim import call_agent
from datapath import netns as netns_mod
from tests.support import cni as testing

REFERENCE_BIN = "/usr/lib/cni"
NPWG_NETWORKS = "k8s.v1.cni.cncf.io/networks"


def run_plugin(binary: str, env: dict[str, str], conf: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([binary], input=json.dumps(conf), env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{binary} {env['CNI_COMMAND']} failed: {proc.stdout} {proc.stderr}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


class System:
    """One system under test: add(i) and delete(i) return the seconds the
    runtime would wait, timed around the plugin's exec (a child spawned the
    same way for every system: no preexec hook, which would force a fork of
    this large process where the others get a vfork)."""

    name = ""
    secondaries = 0
    spaces: list[str]

    def prepare(self, tag: str, count: int) -> None:
        """Namespaces (and pods, where the system reads them) for one round."""

    def add(self, i: int) -> float:
        return timed(lambda: self._call("ADD", i))

    def delete(self, i: int) -> float:
        return timed(lambda: self._call("DEL", i))

    def _call(self, command: str, i: int) -> None:
        raise NotImplementedError

    def check(self, i: int) -> None:
        """What ADD made: eth0 and one interface per secondary network in the pod."""
        out = testing.run("ip", "-n", self.spaces[i], "-j", "link", "show").stdout
        names = {link["ifname"] for link in json.loads(out)}
        wanted = {"eth0", *(f"net{n + 1}" for n in range(self.secondaries))}
        if not wanted <= names:
            raise RuntimeError(f"{self.name}: pod {i} has {sorted(names)}, not {sorted(wanted)}")

    def finish(self) -> None:
        """Remove what prepare made for the round."""


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Multinet(System):
    name = "multinet"

    def __init__(self, node: testing.Node, networks: list[str], secondaries: int, name: str = "") -> None:
        self.node, self.networks, self.secondaries = node, networks, secondaries
        self.name = name or self.name
        self.spaces: list[str] = []
        self.pods: list[tuple[str, str, str]] = []
        self.containers: list[str] = []

    def prepare(self, tag: str, count: int) -> None:
        self.spaces = [self.node.netns.new("m") for _ in range(count)]
        self.pods = []
        for i in range(count):
            allocations = [testing.alloc(self.networks[n], f"net{n + 1}", [f"10.{50 + n}.{i // 250}.{i % 250 + 2}/16"])
                           for n in range(self.secondaries)]
            self.pods.append(self.node.pod(f"{self.name[:2]}{len(self.name)}-{tag}-{i}", allocations))
        self.containers = [f"m{secrets.token_hex(6)}" for _ in range(count)]

    def _call(self, command: str, i: int) -> None:
        result = self.node.cni(command, self.spaces[i], self.pods[i], self.containers[i])
        if result.exit != 0:
            raise RuntimeError(f"multinet-cni {command} failed: {result.out}")

    def finish(self) -> None:
        _drop_spaces(self.node.netns, self.spaces)


class MultinetAgent(Multinet):
    """The same requests sent to the agent's socket from this process: the
    agent's share of multinet's time (the rest is the shim's exec and start)."""

    name = "multinet_agent_only"

    def _call(self, command: str, i: int) -> None:
        env = testing.cni_env(command, self.containers[i], self.spaces[i], pod=self.pods[i])
        code, out = call_agent(str(self.node.agent.socket), env, json.dumps(self.node.agent.conf()), 60)
        if code != 0:
            raise RuntimeError(f"agent {command} failed: {out}")


class ShimStart(System):
    """The installed plugin answering VERSION by itself, in the same rounds:
    the exec and interpreter start that every multinet verb pays."""

    name = "multinet_shim_start"

    def __init__(self, plugin: Path) -> None:
        self.plugin = str(plugin)

    def _call(self, command: str, i: int) -> None:
        run_plugin(self.plugin, {"CNI_COMMAND": "VERSION"}, {"cniVersion": "1.1.0"})

    def check(self, i: int) -> None:
        pass


class Reference(System):
    name = "reference"

    def __init__(self, host: str, work: Path, prefix: str, secondaries: int, netns: testing.Namespaces) -> None:
        self.netns, self.secondaries = netns, secondaries
        # The plugins run in the node's host namespace: spawned from a thread
        # living there (its children inherit it), timed in that thread.
        self.worker = netns_mod.executor(host, "reference")
        self.confs = [bridge_conf(f"{prefix}ref{n}", f"{prefix}rb{n}{secrets.token_hex(2)}", n == 0,
                                  {"type": "host-local", "ranges": [[{"subnet": f"10.{60 + n}.0.0/16"}]],
                                   "dataDir": str(work / "ipam")}) for n in range(secondaries + 1)]
        self.host = host
        self.spaces: list[str] = []
        self.containers: list[str] = []

    def prepare(self, tag: str, count: int) -> None:
        self.spaces = [self.netns.new("r") for _ in range(count)]
        self.containers = [f"r{secrets.token_hex(6)}" for _ in range(count)]

    def add(self, i: int) -> float:
        return self.worker.submit(timed, lambda: self._call("ADD", i)).result()

    def delete(self, i: int) -> float:
        return self.worker.submit(timed, lambda: self._call("DEL", i)).result()

    def _call(self, command: str, i: int) -> None:
        order = range(len(self.confs)) if command == "ADD" else reversed(range(len(self.confs)))
        for n in order:
            env = testing.cni_env(command, self.containers[i], self.spaces[i],
                                  ifname="eth0" if n == 0 else f"net{n}", path=REFERENCE_BIN)
            run_plugin(f"{REFERENCE_BIN}/bridge", env, self.confs[n])

    def finish(self) -> None:
        _drop_spaces(self.netns, self.spaces)

    def close(self) -> None:
        self.worker.shutdown()
        for conf in self.confs:
            testing.run("ip", "-n", self.host, "link", "del", conf["bridge"], check=False)


def bridge_conf(name: str, bridge: str, gateway: bool, ipam: dict[str, Any]) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": bridge, "isGateway": gateway,
            "mtu": 1400, "ipam": ipam}


class Peer(System):
    """Multus (thin) + Whereabouts + bridge on the same apiserver."""

    name = "peer"

    def __init__(self, api: client.ApiClient, objects: testing.ClusterObjects, namespace: str, work: Path,
                 prefix: str, secondaries: int, kubeconfig: Path, peer: PeerInstall,
                 netns: testing.Namespaces) -> None:
        self.core = client.CoreV1Api(api)
        # Multus and Whereabouts read the apiserver, which listens on this
        # namespace's loopback: they run here, as on a node they run in its
        # host namespace. Their bridges carry no address (isGateway false),
        # so nothing routes through this namespace.
        self.objects, self.namespace, self.netns = objects, namespace, netns
        self.bin, self.secondaries = peer.bin, secondaries
        flat = work / "whereabouts.conf"  # the flat file Whereabouts reads its datastore from
        flat.write_text(json.dumps({"datastore": "kubernetes", "kubernetes": {"kubeconfig": str(kubeconfig)},
                                    "log_file": str(work / "whereabouts.log"), "log_level": "error"}))
        self.bridges = [f"{prefix}pb{n}{secrets.token_hex(2)}" for n in range(secondaries + 1)]
        self.nads = []
        for n in range(1, secondaries + 1):
            nad = f"{prefix}-wa{n}-{secrets.token_hex(2)}"
            ipam = {"type": "whereabouts", "range": f"10.{70 + n}.0.0/16", "configuration_path": str(flat)}
            peer.attachment_definition(objects, namespace, nad, bridge_conf(nad, self.bridges[n], False, ipam))
            self.nads.append(nad)
        eth0 = bridge_conf(f"{prefix}peer0", self.bridges[0], False,
                           {"type": "host-local", "ranges": [[{"subnet": "10.70.0.0/16"}]],
                            "dataDir": str(work / "ipam")})
        # The default network as an inline delegate: v4.3.0's clusterNetwork
        # path form loses the bridge's settings on DEL.
        self.conf = {"cniVersion": "1.0.0", "name": f"{prefix}multus", "type": "multus",
                     "kubeconfig": str(kubeconfig), "cniDir": str(work / "multus"), "binDir": str(self.bin),
                     "logFile": str(work / "multus.log"), "logLevel": "error", "delegates": [eth0]}
        self.spaces: list[str] = []
        self.pods: list[tuple[str, str, str]] = []
        self.containers: list[str] = []

    def prepare(self, tag: str, count: int) -> None:
        self.spaces = [self.netns.new("p") for _ in range(count)]
        networks = ",".join(self.nads)
        self.pods = [self._pod(f"peer-{tag}-{i}", networks) for i in range(count)]
        self.containers = [f"p{secrets.token_hex(6)}" for _ in range(count)]

    def _pod(self, name: str, networks: str) -> tuple[str, str, str]:
        body: Any = {"metadata": {"name": name, "namespace": self.namespace, "annotations": {NPWG_NETWORKS: networks}},
                "spec": {"schedulerName": "bench-bound-by-nobody",
                         "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}
        pod = self.core.create_namespaced_pod(self.namespace, body)
        assert pod.metadata is not None
        self.objects.on_close(
            lambda: self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0))
        return self.namespace, name, str(pod.metadata.uid)

    def _call(self, command: str, i: int) -> None:
        env = testing.cni_env(command, self.containers[i], self.spaces[i], pod=self.pods[i], path=str(self.bin))
        run_plugin(str(self.bin / "multus"), env, self.conf)

    def finish(self) -> None:
        _drop_spaces(self.netns, self.spaces)

    def close(self) -> None:
        for bridge in self.bridges:
            testing.run("ip", "link", "del", bridge, check=False)


class PeerInstall:
    """The peer's binaries (hack/bench/cni-peer) and its CRDs, read from the
    module sources that script fetched; a bin dir holding the plugins they call."""

    def __init__(self, built: Path, work: Path) -> None:
        self.bin = work / "peer-bin"
        self.bin.mkdir()
        for name in ("multus", "whereabouts"):
            (self.bin / name).symlink_to(built / "bin" / name)
        for name in ("bridge", "host-local"):
            (self.bin / name).symlink_to(Path(REFERENCE_BIN) / name)
        self.crd_files = [built / "src" / "multus" / "deployments" / "multus-daemonset.yml",
                          *sorted((built / "src" / "whereabouts" / "doc" / "crds").glob("*.yaml"))]

    def install_crds(self, api: client.ApiClient) -> list[str]:
        """The NetworkAttachmentDefinition and Whereabouts CRDs the cluster lacks."""
        ext = client.ApiextensionsV1Api(api)
        created = []
        for path in self.crd_files:
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                try:
                    ext.create_custom_resource_definition(doc)
                    created.append(doc["metadata"]["name"])
                except ApiException as err:
                    if err.status != 409:
                        raise
        for name in created:
            _wait_established(ext, name)
        return created

    def remove_crds(self, api: client.ApiClient, names: list[str]) -> None:
        ext = client.ApiextensionsV1Api(api)
        for name in names:
            try:
                ext.delete_custom_resource_definition(name)
            except ApiException as err:
                if err.status != 404:
                    raise

    def attachment_definition(self, objects: testing.ClusterObjects, namespace: str, name: str,
                              config: dict[str, Any]) -> None:
        body = {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": name, "namespace": namespace}, "spec": {"config": json.dumps(config)}}
        custom = objects.custom
        custom.create_namespaced_custom_object("k8s.cni.cncf.io", "v1", namespace,
                                               "network-attachment-definitions", body)
        objects.on_close(lambda: custom.delete_namespaced_custom_object(
            "k8s.cni.cncf.io", "v1", namespace, "network-attachment-definitions", name))


def _wait_established(ext: client.ApiextensionsV1Api, name: str) -> None:
    for _ in range(100):
        crd = ext.read_custom_resource_definition(name)
        conditions = (crd.status.conditions if crd.status is not None else None) or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            return
        time.sleep(0.1)
    raise TimeoutError(f"CRD {name} not established")


def _drop_spaces(netns: testing.Namespaces, spaces: list[str]) -> None:
    for space in spaces:
        testing.run("ip", "netns", "del", space)
        netns.made.remove(space)
    spaces.clear()
