"""One kubelet per node, in the node's host network namespace, talking to the
node's containerd and to the apiserver on the underlay.

Credentials come from the cluster's CA: a client certificate for
`system:node:<name>` (group `system:nodes`, so the Node authorizer applies)
and a serving certificate for the node's name and InternalIP, which the
apiserver verifies when it proxies logs, exec and port-forward.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kube import pki
from multinet.cluster.containerd import SHIM_SOCKET_DIR
from multinet.cluster.kubeconfig import write_kubeconfig

# Paths kubelet and containerd use whatever their configuration says: the
# container log links, the device plugin socket (and its checkpoint), the
# dir where containerd 1.6's shims listen. Shared by every node here.
CONTAINER_LOGS = Path("/var/log/containers")
DEVICE_PLUGINS = Path("/var/lib/kubelet/device-plugins")
SHIM_SOCKETS = SHIM_SOCKET_DIR
PORT = 10250  # kubelet's stock port: every node has its own namespace


@dataclass(frozen=True)
class Kubelet:
    name: str
    node_ip: str
    root: Path  # everything of this kubelet lives under it
    cgroup_root: str
    runtime_socket: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pods-logs"

    def credentials(self, ca: pki.KeyPair, server: str) -> None:
        creds = self.root / "pki"
        client = pki.issue(ca, creds, "client", f"system:node:{self.name}", "system:nodes")
        pki.issue(ca, creds, "serving", f"system:node:{self.name}",
                  server_names=(self.name, self.node_ip), client=False)
        write_kubeconfig(self.kubeconfig, server, ca.cert, client, f"system:node:{self.name}")

    def write_config(self, ca_cert: Path) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(yaml.safe_dump(self.configuration(ca_cert), sort_keys=False))
        return self.config

    def configuration(self, ca_cert: Path) -> dict[str, Any]:
        creds = self.root / "pki"
        endpoint = f"unix://{self.runtime_socket}"
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "containerRuntimeEndpoint": endpoint,
            "imageServiceEndpoint": endpoint,
            # cgroup v1 with cgroupfs here; each node has its own subtree.
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup_root}",
            "cgroupsPerQOS": True,
            "enforceNodeAllocatable": ["pods"],
            "failCgroupV1": False,
            "failSwapOn": False,
            "tlsCertFile": str(creds / "serving.crt"),
            "tlsPrivateKeyFile": str(creds / "serving.key"),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "readOnlyPort": 0,
            "podLogsDir": str(self.pod_logs),
            "volumePluginDir": str(self.root / "volume-plugins"),
            "makeIPTablesUtilChains": False,
            # Images cannot be pulled again here (no registry): never collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "serializeImagePulls": False,
            "registerNode": True,
        }

    def argv(self, binary: Path, host_netns: str) -> list[str]:
        return [
            "nsenter", f"--net=/run/netns/{host_netns}", "--", str(binary),
            f"--config={self.config}", f"--kubeconfig={self.kubeconfig}", f"--root-dir={self.root / 'root'}",
            f"--hostname-override={self.name}", f"--node-ip={self.node_ip}", "--v=0",
        ]


def healthz(node_ip: str, pki_dir: Path) -> tuple[bool, str]:
    """GET /healthz on the kubelet's secure port as the apiserver does (its
    client certificate, the serving certificate checked against the CA)."""
    try:
        ctx = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
        ctx.load_cert_chain(str(pki_dir / "apiserver-kubelet-client.crt"), str(pki_dir / "apiserver-kubelet-client.key"))
        conn = http.client.HTTPSConnection(node_ip, PORT, context=ctx, timeout=3)
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        body = response.read(100).decode(errors="replace").strip()
        conn.close()
    except (OSError, ssl.SSLError, http.client.HTTPException) as err:
        return False, str(err) or type(err).__name__
    return response.status == 200 and body == "ok", f"HTTP {response.status}: {body[:60]}"


def machine_paths_missing() -> list[str]:
    """Which of the machine-wide paths nodes write do not exist yet (so `down` may remove them)."""
    return [str(p) for p in (CONTAINER_LOGS, DEVICE_PLUGINS.parent, SHIM_SOCKETS.parent) if not p.exists()]


def clean_machine_paths(pod_logs: list[Path], created: list[str]) -> list[str]:
    """Remove what the cluster's nodes left in the machine-wide paths: their
    container log links, and the dirs they created unless another node uses them."""
    removed = []
    if CONTAINER_LOGS.is_dir():
        for link in CONTAINER_LOGS.iterdir():
            try:
                target = Path(link.readlink() if link.is_symlink() else "")
            except OSError:
                continue
            if any(target.is_relative_to(d) for d in pod_logs):
                link.unlink(missing_ok=True)
                removed.append(str(link))
        if str(CONTAINER_LOGS) in created and not any(CONTAINER_LOGS.iterdir()):
            CONTAINER_LOGS.rmdir()
            removed.append(str(CONTAINER_LOGS))
    if str(DEVICE_PLUGINS.parent) in created and not _kubelet_listens(DEVICE_PLUGINS / "kubelet.sock"):
        for entry in DEVICE_PLUGINS.iterdir() if DEVICE_PLUGINS.is_dir() else ():
            entry.unlink()
        for d in (DEVICE_PLUGINS, DEVICE_PLUGINS.parent):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
                removed.append(str(d))
    if str(SHIM_SOCKETS.parent) in created:  # empty once every shim is gone
        for d in (SHIM_SOCKETS, SHIM_SOCKETS.parent):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
                removed.append(str(d))
    return removed


def _kubelet_listens(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True
