"""The local cluster's nodes: real kubelets and containerds in network namespaces.

Each node is a "host" network namespace and an "ipu" namespace between its pods
and the underlay (`multinet.cluster.topology`); nodes share an underlay
bridge, which the machine's own namespace joins (see `hostnet`). Per node run,
in its host namespace: containerd (its own dirs, sockets and cgroup subtree,
the local images imported) and kubelet (its own root dir and cgroup root,
`--node-ip` its underlay address). multinet itself is then installed as on
any cluster: its image imported into every node's containerd, deploy/ applied
(`addon.install` of overlays/local), its Deployment and DaemonSets waited for.

Everything made is recorded (pid files, topology.json) so `down` removes
exactly what `up` made: kubelets, containers and shims, containerds, mounts,
cgroups, namespaces, and the machine-wide sysctls kubelet changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from multinet.cluster import addon, cgroups, hostnet, kubelet, mounts, netplan, node_cni, sysctls
from multinet.cluster.binaries import BinariesError, find_bin_dir
from multinet.cluster.containerd import Containerd, ContainerdError
from multinet.cluster.control_plane import SERVICE_IP, ControlPlane
from multinet.cluster.images import ARCHIVES, find_image_dir
from multinet.cluster.layout import default_state_dir
from multinet.cluster.processes import ComponentError, ProcessRecord, is_running, log_tail, spawn, stop
from podnetwork import faults
from podnetwork.names import NODE_PREFIX

Progress = Callable[[str], None]


@dataclass(frozen=True)
class NodePlan:
    name: str
    host_ns: str
    ipu_ns: str
    node_ip: str  # underlay address: InternalIP and VXLAN endpoint
    pod_cidr: str
    root: Path
    cgroup_root: str

    @property
    def socket(self) -> Path:
        """The node agent's socket (where deploy/overlays/local puts it)."""
        return self.root / "agent.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_bin_dir(self) -> Path:
        return self.root / "cni" / "bin"

    @property
    def containerd(self) -> Containerd:
        return Containerd(self.root / "containerd", self.cni_bin_dir, self.cni_conf_dir)

    @property
    def kubelet(self) -> kubelet.Kubelet:
        return kubelet.Kubelet(self.name, self.node_ip, self.root / "kubelet", self.cgroup_root,
                               self.containerd.socket)

    def to_json(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, doc: dict[str, str]) -> NodePlan:
        return cls(**{**doc, "root": Path(doc["root"])})  # type: ignore[arg-type]


@dataclass(frozen=True)
class NodeImages:
    """The archives every node's containerd imports: pause and agnhost, and multinet's."""

    archives: tuple[Path, ...]
    multinet: Path

    @classmethod
    def find(cls, progress: Progress) -> NodeImages:
        """Built where missing or stale, else the cached ones."""
        image_dir = find_image_dir(build=True)
        return cls(tuple(image_dir / a for a in ARCHIVES), addon.build_image(progress))

    @property
    def all(self) -> list[Path]:
        return [*self.archives, self.multinet]


class Nodes:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.root = plane.layout.root / "nodes"
        self.topology_file = plane.layout.root / "topology.json"
        # Node namespaces are machine-wide: a cluster in another state dir
        # gets its own prefix (at most 6 characters: link names are short).
        same = "MULTINET_STATE" not in os.environ and plane.layout.root == default_state_dir()
        self.prefix = NODE_PREFIX if same else f"mn{hashlib.sha256(str(plane.layout.root).encode()).hexdigest()[:3]}-"
        self.machine_link = f"{self.prefix}gw"

    # --- records -------------------------------------------------------------

    def _topology(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.topology_file.read_text()))
        except (OSError, ValueError):
            return {}

    def plans(self) -> list[NodePlan]:
        return [NodePlan.from_json(d) for d in self._topology().get("nodes", [])]

    def _save(self, **fields: object) -> None:
        doc = {**self._topology(), **fields}
        tmp = self.topology_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(self.topology_file)

    # --- up ------------------------------------------------------------------

    def start(self, count: int, images: NodeImages, progress: Progress) -> list[NodePlan]:
        if self.topology_file.exists():
            raise ComponentError("nodes: already made; run 'multinet cluster down' first")
        net = netplan.load(self.plane.layout.netplan_file)
        if net is None or self.plane.node_address != net.gateway:
            raise ComponentError("nodes: the control plane was started without an underlay address; "
                                 "run 'multinet cluster down' and 'multinet cluster up --nodes N'")
        self._refuse_clashes(net)
        self._save(namespaces=[], nodes=[], cgroups=[], machine_paths=kubelet.machine_paths_missing())
        self._share_root()
        sysctls.acquire(self.topology_file)  # before the first kubelet
        plans = self._make_namespaces(count, net)
        self._start_runtimes(plans, images.all, progress)
        self._start_kubelets(plans, progress)
        self._wait_ready(plans, progress)
        self._install_multinet(net, images.multinet, progress)
        return plans

    def _share_root(self) -> None:
        """The nodes' root as a shared mount of its own: the pods' network namespaces,
        mounted under each containerd's state after the agent's pod started, must
        propagate into its HostToContainer mount (a private parent mount would not)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not mounts.under(self.root):
            hostnet.run(["mount", "--bind", str(self.root), str(self.root)])
        hostnet.run(["mount", "--make-shared", str(self.root)])

    def _install_multinet(self, net: netplan.NetPlan, archive: Path, progress: Progress) -> None:
        local = addon.LocalCluster(node_root=self.root, apiserver_host=net.gateway,
                                   apiserver_port=self.plane.ports.apiserver, netns_prefix=self.prefix,
                                   faults=faults.ACTIVE)
        start = time.monotonic()
        addon.install(self.plane.layout.admin_kubeconfig, addon.image_ref(archive), local=local,
                      progress=progress, kubectl=str(self._kubectl()))
        progress(f"multinet: Ready on every node {time.monotonic() - start:.1f}s after the apply began")

    def _kubectl(self) -> Path:
        return (self.plane.bin_dir or find_bin_dir(None, build=False)) / "kubectl"

    def _refuse_clashes(self, net: netplan.NetPlan) -> None:
        taken = netplan.machine_ranges()
        if any(r.overlaps(t) for r in net.ranges() for t in taken):
            raise ComponentError(f"nodes: {net.underlay} or {net.cluster_cidr} is routed on this machine "
                                 "already (another local cluster?)")
        foreign = [ns for ns in os.listdir("/var/run/netns") if ns.startswith(self.prefix)] \
            if os.path.isdir("/var/run/netns") else []
        if foreign:
            raise ComponentError(f"nodes: namespaces {', '.join(sorted(foreign))} exist but this cluster "
                                 f"did not make them (another cluster with prefix {self.prefix!r}?)")

    def _make_namespaces(self, count: int, net: netplan.NetPlan) -> list[NodePlan]:
        from multinet.cluster.topology import UNDERLAY_MTU, Topology  # the node layout, shared with the datapath tests

        testbed = Topology(prefix=self.prefix, underlay_cidr=str(net.underlay))
        plans = []
        try:
            for index in range(1, count + 1):
                node = testbed.add_node(f"node{index}")
                assert node.vtep == net.node_ip(index), (node.vtep, net.node_ip(index))
                plans.append(NodePlan(
                    node.name, node.host_ns, node.ipu_ns, node.vtep, net.pod_cidr(index),
                    self.root / node.name, f"{self.prefix}{node.name}"))
            hostnet.attach_machine(testbed.underlay_ns, testbed.bridge, self.machine_link,
                                   f"{net.gateway}/{net.underlay.prefixlen}", UNDERLAY_MTU)
        finally:  # record what exists even if a later step failed
            self._save(namespaces=testbed.namespaces, nodes=[p.to_json() for p in plans])
        for plan in plans:
            hostnet.wire_node(plan.host_ns, plan.ipu_ns, plan.node_ip, plan.pod_cidr)
            hostnet.route_peers(plan.ipu_ns, [(p.pod_cidr, p.node_ip) for p in plans if p != plan])
            hostnet.kubernetes_service(plan.host_ns, SERVICE_IP, net.gateway, self.plane.ports.apiserver)
        hostnet.route_machine(self.machine_link, [(p.pod_cidr, p.node_ip) for p in plans])
        return plans

    def _start_runtimes(self, plans: list[NodePlan], images: list[Path], progress: Progress) -> None:
        for plan in plans:
            node_cni.install_bin_dir(plan.cni_bin_dir)
            node_cni.install_conf_dir(plan.cni_conf_dir, plan.pod_cidr, plan.root / "cni" / "ipam")
            cgroups.create(plan.cgroup_root)
            self._save(cgroups=[p.cgroup_root for p in plans[: plans.index(plan) + 1]])
            plan.containerd.write_config()
            record = self._spawn(f"containerd-{plan.name}", plan.containerd.argv(plan.host_ns), progress)
            cgroups.join(plan.cgroup_root, record.pid)  # before any shim is forked
        for plan in plans:
            self._wait(f"containerd-{plan.name}", plan.containerd.serving, 30.0)

        def load(plan: NodePlan) -> None:
            for archive in images:
                plan.containerd.import_image(archive)

        progress(f"images: importing {', '.join(a.name for a in images)} into every node's containerd")
        start = time.monotonic()
        with ThreadPoolExecutor(len(plans)) as pool:
            list(pool.map(load, plans))
        progress(f"images: imported into {len(plans)} nodes in {time.monotonic() - start:.1f}s")

    def _start_kubelets(self, plans: list[NodePlan], progress: Progress) -> None:
        from kube import pki

        bin_dir = self.plane.bin_dir
        assert bin_dir is not None, "bin_dir is needed to start kubelets"
        ca = pki.KeyPair(self.plane.layout.pki / "ca.crt", self.plane.layout.pki / "ca.key")
        server = f"https://{self.plane.node_address}:{self.plane.ports.apiserver}"
        for plan in plans:
            k = plan.kubelet
            k.credentials(ca, server)
            k.write_config(ca.cert)
            record = self._spawn(f"kubelet-{plan.name}", k.argv(bin_dir / "kubelet", plan.host_ns), progress)
            cgroups.join(plan.cgroup_root, record.pid)

    def _wait_ready(self, plans: list[NodePlan], progress: Progress, timeout: float = 90.0) -> None:
        """Every Node Ready (its pod range recorded).

        A process that dies at start (a bad flag, a taken port) is reported now,
        with its log, rather than found later as a pod that never runs.
        """
        from multinet.cluster.nodeapi import NodeApi

        api = NodeApi(self.plane.layout.admin_kubeconfig)
        watched = [f"{kind}-{p.name}" for p in plans for kind in ("containerd", "kubelet")]
        waiting = {p.name: p for p in plans}
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            self.check(watched)
            ready = api.ready()
            for name, plan in list(waiting.items()):
                if ready.get(name):
                    api.set_pod_cidr(name, plan.pod_cidr)
                    progress(f"{name}: Ready (kubelet and containerd)")
                    del waiting[name]
            time.sleep(0.2)
        if waiting:
            raise ComponentError(f"{', '.join(waiting)}: not Ready after {timeout:.0f}s "
                                 f"(logs in {self.plane.layout.logs})")

    def _spawn(self, name: str, argv: list[str], progress: Progress) -> ProcessRecord:
        log = self.plane.layout.log(name)
        record = spawn(name, argv, log)
        record.save(self.plane.layout.pid_file(name))
        progress(f"{name}: started (pid {record.pid}, log {log})")
        return record

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            self.check([name])
            if time.monotonic() > deadline:
                raise ComponentError(f"{name}: not serving after {timeout:.0f}s\n"
                                     f"{log_tail(self.plane.layout.log(name))}")
            time.sleep(0.1)

    def check(self, names: list[str]) -> None:
        """Fail with the log tail of any recorded process that has exited."""
        for name in names:
            record = self.plane.record(name)
            if record and not is_running(record):
                raise ComponentError(f"{name}: exited\n{log_tail(Path(record.log))}")

    # --- status --------------------------------------------------------------

    def status(self) -> list[tuple[str, int | None, str, str]]:
        """(component, pid, port, state) of each node's containerd and kubelet, then of
        multinet's Deployment and DaemonSets (the add-on)."""
        rows: list[tuple[str, int | None, str, str]] = []
        plans = self.plans()
        for plan in plans:
            for kind in ("containerd", "kubelet"):
                name = f"{kind}-{plan.name}"
                record = self.plane.record(name)
                if not record or not is_running(record):
                    rows.append((name, None, "-", "stopped"))
                    continue
                if kind == "containerd":
                    ok, why = plan.containerd.serving(), f"ctr cannot reach {plan.containerd.socket}"
                    port = "-"
                else:
                    ok, why = kubelet.healthz(plan.node_ip, self.plane.layout.pki)
                    port = f"{plan.node_ip}:{kubelet.PORT}"
                rows.append((name, record.pid, port, "healthy" if ok else f"unhealthy: {why}"))
        if plans:
            rows += self._addon_status()
        return rows

    def _addon_status(self) -> list[tuple[str, int | None, str, str]]:
        try:
            states = {(s.kind.lower(), s.name): s
                      for s in addon.workloads(self.plane.layout.admin_kubeconfig, str(self._kubectl()))}
        except (addon.AddonError, BinariesError) as err:
            return [("multinet", None, "-", f"unknown: {err}")]
        rows: list[tuple[str, int | None, str, str]] = []
        for kind, name in addon.WORKLOADS:
            s = states.get((kind, name))
            state = "unhealthy: not installed" if s is None else \
                "healthy" if s.done else f"unhealthy: {s} ready"
            rows.append((f"{kind}/{name}", None, "-", state))
        return rows

    # --- down ----------------------------------------------------------------

    def stop_runtimes(self, progress: Progress) -> None:
        """kubelets, then every container and shim, containerds, mounts and cgroups.

        kubelet first, so it starts nothing while its pods go; tasks through
        containerd, so the shims exit and remove their sockets; whatever is
        left in a node's cgroup subtree is killed (it is the node's alone).
        """
        plans = self.plans()
        for plan in plans:
            self._stop(f"kubelet-{plan.name}", progress)
        for plan in plans:
            ids: list[str] = []
            if plan.containerd.serving():
                ids = plan.containerd.stop_tasks()
            self._stop(f"containerd-{plan.name}", progress)
            killed = cgroups.kill_all(plan.cgroup_root)
            unmounted = mounts.unmount_all(plan.root)
            for sock in plan.containerd.shim_sockets(ids):
                sock.unlink(missing_ok=True)
            progress(f"{plan.name}: {len(ids)} containers stopped, {killed} leftover processes killed, "
                     f"{len(unmounted)} mounts removed")
        for root in self._topology().get("cgroups", []):
            cgroups.remove(str(root))
        if self.root.exists():
            mounts.unmount_all(self.root)  # the shared bind mount of `_share_root`, last

    def _stop(self, name: str, progress: Progress) -> None:
        record = self.plane.record(name)
        if record is None:
            return
        if stop(record):
            progress(f"{name}: stopped (pid {record.pid})")
        self.plane.layout.pid_file(name).unlink(missing_ok=True)

    def remove_namespaces(self, progress: Progress) -> None:
        """The namespaces (with the machine's underlay link and routes), the
        machine-wide paths kubelet wrote, and the sysctls kubelet changed."""
        topology = self._topology()
        if not topology:
            return
        for ns in reversed(topology.get("namespaces", [])):
            if Path("/var/run/netns", ns).exists():
                hostnet.run(["ip", "netns", "delete", ns])
        removed = kubelet.clean_machine_paths([p.kubelet.pod_logs for p in self.plans()],
                                              list(topology.get("machine_paths", [])))
        for name, (was, now) in sysctls.release(self.topology_file).items():
            progress(f"sysctl {name.replace('/', '.')}: {was} -> {now} (as before the local clusters)")
        # The nodes' runtime state (containerd's, kubelet's, the agents', the
        # address reservations) dies with them, even with `down --keep`: the
        # next `up` makes fresh nodes, and kubelets recreate the pods bound to them.
        shutil.rmtree(self.root, ignore_errors=True)
        self.topology_file.unlink()
        progress(f"node namespaces removed ({len(removed)} machine-wide log links and dirs)")


__all__ = ["ContainerdError", "NodePlan", "Nodes"]
