"""The local Kubernetes control plane: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler as processes on 127.0.0.1.

No container engine is needed: these are the real upstream binaries, built
from pinned Go modules. A cluster planned with nodes (see `netplan`) also
serves on its underlay address, where the nodes' kubelets reach it, and
reaches kubelets by their InternalIP with a client certificate.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from kube import pki
from multinet.cluster import netplan
from multinet.cluster.kubeconfig import write_kubeconfig
from multinet.cluster.layout import Layout, Ports
from multinet.cluster.processes import ComponentError, ProcessRecord, is_running, log_tail, spawn, stop

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service's ClusterIP, a SAN of the serving cert
# Controllers the issue requires are all in the default set; `*` keeps it so.
CONTROLLERS = "*"
LOCAL_NAMES = ("127.0.0.1", "localhost")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Health:
    name: str
    pid: int | None
    port: int
    state: str  # "healthy", "unhealthy: ...", "stopped"


@dataclass(frozen=True)
class Component:
    name: str
    port: int
    health_path: str
    tls: bool


class ControlPlane:
    """Starts, checks and stops one local control plane rooted at `layout.root`."""

    def __init__(self, layout: Layout, bin_dir: Path | None = None, ports: Ports | None = None) -> None:
        self.layout = layout
        self.bin_dir = bin_dir
        # The underlay address nodes reach the apiserver at, if the cluster has a plan.
        plan = netplan.load(layout.netplan_file)
        self.node_address = plan.gateway if plan else None
        # The ports a cluster was started with are kept in its state, so
        # status and down find it whatever the environment says now.
        self.ports = ports = ports or self._recorded_ports() or Ports.from_env()
        self.components = (
            Component("etcd", ports.etcd_client, "/health", tls=False),
            Component("kube-apiserver", ports.apiserver, "/readyz", tls=True),
            Component("kube-controller-manager", ports.controller_manager, "/healthz", tls=True),
            Component("kube-scheduler", ports.scheduler, "/healthz", tls=True),
        )

    def _recorded_ports(self) -> Ports | None:
        try:
            return Ports(**json.loads(self.layout.ports_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    # --- state -------------------------------------------------------------

    def record(self, name: str) -> ProcessRecord | None:
        return ProcessRecord.load(self.layout.pid_file(name))

    def running(self) -> list[str]:
        return [c.name for c in self.components if (r := self.record(c.name)) and is_running(r)]

    def is_up(self) -> bool:
        return len(self.running()) == len(self.components)

    # --- up ----------------------------------------------------------------

    def up(self, progress: Progress, timeout: float = 120.0) -> bool:
        """Start what is not running. Returns False if everything already ran."""
        if self.is_up():
            return False
        assert self.bin_dir is not None, "bin_dir is needed to start the control plane"
        for d in (self.layout.root, self.layout.logs, self.layout.pids):
            d.mkdir(parents=True, exist_ok=True)
        self.layout.ports_file.write_text(json.dumps(asdict(self.ports)))
        self._credentials()
        for component in self.components:
            record = self.record(component.name)
            if record and is_running(record):
                progress(f"{component.name}: already running (pid {record.pid})")
                continue
            self._start(component, progress, timeout)
        return True

    def _credentials(self) -> None:
        layout, p = self.layout, self.layout.pki
        ca = pki.ensure_ca(p)
        pki.ensure_service_account_keys(p)
        names: tuple[str, ...] = LOCAL_NAMES + (
            SERVICE_IP, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        )
        if self.node_address:
            names += (self.node_address,)
        pki.issue(ca, p, "apiserver", "kube-apiserver", server_names=names, client=False)
        # The apiserver's identity towards kubelets (logs, exec, port-forward, proxy).
        pki.issue(ca, p, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters")
        pki.issue(ca, p, "controller-manager-serving", "kube-controller-manager", server_names=LOCAL_NAMES, client=False)
        pki.issue(ca, p, "scheduler-serving", "kube-scheduler", server_names=LOCAL_NAMES, client=False)
        users = {
            "admin": ("kubernetes-admin", "system:masters"),
            "controller-manager": ("system:kube-controller-manager", None),
            "scheduler": ("system:kube-scheduler", None),
        }
        for user, (cn, org) in users.items():
            client = pki.issue(ca, p, f"{user}-client", cn, org)
            path = layout.kubeconfig(user)
            if not path.exists():
                write_kubeconfig(path, self.server, ca.cert, client, user)

    def _argv(self, name: str) -> list[str]:
        assert self.bin_dir is not None
        p, ports, kc = self.layout.pki, self.ports, self.layout.kubeconfig
        binary = str(self.bin_dir / name)
        if name == "etcd":
            peer = f"http://127.0.0.1:{ports.etcd_peer}"
            client = f"http://127.0.0.1:{ports.etcd_client}"
            return [
                binary, "--name=multinet", f"--data-dir={self.layout.etcd_data}",
                f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=multinet={peer}", "--log-level=warn",
            ]
        if name == "kube-apiserver":
            # With nodes, it serves on every address (loopback for kubeconfigs,
            # the underlay for kubelets) and advertises the underlay one.
            advertise, bind = (self.node_address, "0.0.0.0") if self.node_address else ("127.0.0.1",) * 2
            return [
                binary, f"--advertise-address={advertise}", f"--bind-address={bind}",
                f"--secure-port={ports.apiserver}",
                f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
                f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
                f"--client-ca-file={p / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC", "--allow-privileged=true",
                # The `kubernetes` Service cannot point at a loopback address
                # (EndpointSlice validation refuses it): without an underlay
                # address it has no endpoints.
                f"--endpoint-reconciler-type={'lease' if self.node_address else 'none'}",
                # Node names do not resolve here: kubelets are reached by InternalIP.
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={p / 'ca.crt'}",
                # No kube-proxy: a ClusterIP leads nowhere from here. Webhooks (and
                # aggregated APIs) behind a Service are dialled at its ready
                # endpoints instead (the flag switches the service resolver the
                # admission plugins use, cmd/kube-apiserver/app/server.go).
                "--enable-aggregator-routing=true",
                "--profiling=false",
            ]
        common = [
            "--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false",
        ]
        if name == "kube-controller-manager":
            return [
                binary, *common, f"--secure-port={ports.controller_manager}",
                f"--kubeconfig={kc('controller-manager')}",
                f"--authentication-kubeconfig={kc('controller-manager')}",
                f"--authorization-kubeconfig={kc('controller-manager')}",
                f"--tls-cert-file={p / 'controller-manager-serving.crt'}",
                f"--tls-private-key-file={p / 'controller-manager-serving.key'}",
                f"--service-account-private-key-file={p / 'sa.key'}",
                f"--root-ca-file={p / 'ca.crt'}",
                f"--cluster-signing-cert-file={p / 'ca.crt'}",
                f"--cluster-signing-key-file={p / 'ca.key'}",
                "--use-service-account-credentials=true",
                f"--controllers={CONTROLLERS}",
            ]
        if name == "kube-scheduler":
            return [
                binary, *common, f"--secure-port={ports.scheduler}",
                f"--kubeconfig={kc('scheduler')}",
                f"--authentication-kubeconfig={kc('scheduler')}",
                f"--authorization-kubeconfig={kc('scheduler')}",
                f"--tls-cert-file={p / 'scheduler-serving.crt'}",
                f"--tls-private-key-file={p / 'scheduler-serving.key'}",
            ]
        raise ValueError(f"unknown component {name!r}")

    def _start(self, component: Component, progress: Progress, timeout: float) -> None:
        if port_taken(component.port):
            raise ComponentError(
                f"{component.name}: port 127.0.0.1:{component.port} is taken by another process"
            )
        log = self.layout.log(component.name)
        progress(f"{component.name}: starting on 127.0.0.1:{component.port} (log {log})")
        record = spawn(component.name, self._argv(component.name), log)
        record.save(self.layout.pid_file(component.name))
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not is_running(record):
                raise ComponentError(f"{component.name}: exited during start-up\n{log_tail(log)}")
            ok, last = self.probe(component)
            if ok:
                progress(f"{component.name}: healthy (pid {record.pid})")
                return
            time.sleep(0.25)
        raise ComponentError(
            f"{component.name}: not healthy after {timeout:.0f}s ({last})\n{log_tail(log)}"
        )

    # --- health --------------------------------------------------------------

    def probe(self, component: Component) -> tuple[bool, str]:
        """GET the component's health endpoint; (ok, short reason)."""
        try:
            if component.tls:
                ctx = ssl.create_default_context(cafile=str(self.layout.pki / "ca.crt"))
                admin = self.layout.pki
                ctx.load_cert_chain(str(admin / "admin-client.crt"), str(admin / "admin-client.key"))
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    "127.0.0.1", component.port, context=ctx, timeout=3
                )
            else:
                conn = http.client.HTTPConnection("127.0.0.1", component.port, timeout=3)
            conn.request("GET", component.health_path)
            response = conn.getresponse()
            body = response.read(200).decode(errors="replace").strip()
            conn.close()
        except (OSError, ssl.SSLError, http.client.HTTPException) as err:
            return False, str(err) or type(err).__name__
        ok = response.status == 200 and ("true" in body if component.name == "etcd" else body == "ok")
        return ok, f"HTTP {response.status}: {body[:80]}"

    def status(self) -> list[Health]:
        out = []
        for c in self.components:
            record = self.record(c.name)
            if not record or not is_running(record):
                out.append(Health(c.name, None, c.port, "stopped"))
                continue
            ok, reason = self.probe(c)
            out.append(Health(c.name, record.pid, c.port, "healthy" if ok else f"unhealthy: {reason}"))
        return out

    # --- down ----------------------------------------------------------------

    def down(self, progress: Progress, keep: bool = False, before_control_plane: Callable[[], None] | None = None) -> None:
        """Stop every process recorded under this cluster, newest layer first.

        Processes other parts registered (controller, IPU targets, agents;
        nodes stop their kubelets and runtimes before) depend on the apiserver
        and on each other in the order they were started: they stop first,
        newest first. `before_control_plane`
        runs once they are gone (e.g. to remove node namespaces).
        """
        known = [c.name for c in self.components]
        recorded = [ProcessRecord.load(p) for p in self.layout.pids.glob("*.json")] if self.layout.pids.exists() else []
        extras = sorted((r for r in recorded if r and r.name not in known), key=lambda r: (r.start_time, r.started), reverse=True)
        for record in extras:
            self._stop(record.name, progress)
        if before_control_plane:
            before_control_plane()
        for name in reversed(known):
            self._stop(name, progress)
        if not keep and self.layout.root.exists():
            shutil.rmtree(self.layout.root)
            progress(f"removed {self.layout.root}")

    def _stop(self, name: str, progress: Progress) -> None:
        record = self.record(name)
        if record is None:
            return
        if stop(record):
            progress(f"{name}: stopped (pid {record.pid})")
        self.layout.pid_file(name).unlink(missing_ok=True)

def port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False

