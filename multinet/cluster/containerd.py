"""One containerd per node (Debian's), with everything of its own: root,
state, sockets, runc root, CNI dirs and cgroup. It runs in the node's host
network namespace; `ctr` (containerd's own client) talks to it over its
socket for image imports, the pod sandboxes' network namespaces and teardown.

Settings this machine needs (see the README's "Real nodes"):
- `restrict_oom_score_adj`: CRI asks runc for oom_score_adj -998/-997, which
  needs CAP_SYS_RESOURCE; without it every pod sandbox fails.
- `netns_mounts_under_state_dir`: pod network namespaces are mounted under
  the node's state, not the machine-wide /var/run/netns.
- the runc `Root`: otherwise every node shares /run/containerd/runc/k8s.io.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from multinet.cluster.processes import ComponentError

PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1"  # kubelet 1.34's default sandbox image
CRI_NAMESPACE = "k8s.io"
SHIM_SOCKET_DIR = Path("/run/containerd/s")  # containerd 1.6 hard-codes where shims listen
# Snapshotters that cannot work here and only log errors at start.
DISABLED = ("io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
            "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs")


class ContainerdError(ComponentError):
    pass


@dataclass(frozen=True)
class Containerd:
    """The files of one node's containerd, all under `root`."""

    root: Path
    cni_bin_dir: Path
    cni_conf_dir: Path

    @property
    def socket(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def netns_dir(self) -> Path:
        """Where the CRI plugin mounts pod network namespaces (netns_mounts_under_state_dir)."""
        return self.state / "io.containerd.grpc.v1.cri" / "netns"

    def write_config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        q = json.dumps  # a JSON string is a TOML basic string
        cri = '[plugins."io.containerd.grpc.v1.cri"'
        self.config.write_text(f"""\
version = 2
root = {q(str(self.root / "root"))}
state = {q(str(self.state))}
oom_score = 0
disabled_plugins = {q(list(DISABLED))}

[grpc]
  address = {q(str(self.socket))}
[ttrpc]
  address = {q(str(self.socket) + ".ttrpc")}
[debug]
  level = "warn"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = {q(str(self.root / "opt"))}

{cri}]
  sandbox_image = {q(PAUSE_IMAGE)}
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = {q(str(self.root / "runc"))}
{cri}.cni]
  bin_dir = {q(str(self.cni_bin_dir))}
  conf_dir = {q(str(self.cni_conf_dir))}
  max_conf_num = 1
""")
        return self.config

    def argv(self, host_netns: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{host_netns}", "--",
                "containerd", "--config", str(self.config)]

    # --- ctr ---------------------------------------------------------------

    def ctr(self, *args: str, timeout: float = 120.0) -> str:
        proc = subprocess.run(["ctr", "--address", str(self.socket), "--namespace", CRI_NAMESPACE, *args],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ContainerdError(f"ctr {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def serving(self) -> bool:
        try:
            self.ctr("version", timeout=5)
        except (ContainerdError, subprocess.TimeoutExpired):
            return False
        return True

    def import_image(self, archive: Path) -> None:
        self.ctr("images", "import", str(archive), timeout=300)

    def containers(self, namespace: str | None = None) -> list[str]:
        """The ids of the node's containers (sandboxes included), or of one Kubernetes namespace's pods'."""
        where = [f'labels."io.kubernetes.pod.namespace"=={namespace}'] if namespace else []
        return self.ctr("containers", "list", "--quiet", *where).split()

    def sandbox_netns(self, pod_uid: str) -> str | None:
        """The network namespace path of the pod's sandbox (its pause container)."""
        ids = self.ctr("containers", "list", "--quiet",
                       f'labels."io.kubernetes.pod.uid"=={pod_uid},'
                       'labels."io.cri-containerd.kind"==sandbox').split()
        for cid in ids:
            spec = json.loads(self.ctr("containers", "info", cid)).get("Spec") or {}
            for ns in spec.get("linux", {}).get("namespaces", []):
                if ns.get("type") == "network" and ns.get("path"):
                    return str(ns["path"])
        return None

    def stop_tasks(self) -> list[str]:
        """Kill and delete every task (containers and sandboxes), so each shim
        exits and removes its socket. Returns the ids of the containers."""
        ids = self.containers()
        for cid in ids:
            for args in (("tasks", "kill", "--all", "--signal", "SIGKILL", cid), ("tasks", "delete", "--force", cid)):
                try:
                    self.ctr(*args, timeout=30)
                except (ContainerdError, subprocess.TimeoutExpired):
                    pass  # no task (never started, or gone already)
        return ids

    def shim_sockets(self, ids: list[str]) -> list[Path]:
        """Where the shims of `ids` listen: containerd 1.6 names the socket by
        sha256(<grpc address>/<namespace>/<id>) in SHIM_SOCKET_DIR."""
        out = []
        for cid in ids:
            digest = hashlib.sha256(f"{self.socket}/{CRI_NAMESPACE}/{cid}".encode()).hexdigest()
            out.append(SHIM_SOCKET_DIR / digest)
        return out
