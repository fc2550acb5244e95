"""A node's CNI dirs, as a real node's /opt/cni/bin and /etc/cni/net.d before
any add-on: the reference plugins (links to Debian's) and the primary
network's conflist (the reference bridge plugin with host-local addresses
from the node's pod range, the cluster's default network, as kindnet sets up
on kind).

multinet's own plugin and conflist are the add-on's to install (the
`install-cni` init container of deploy/'s node DaemonSet); its conflist sorts
first, so the runtime calls multinet, which delegates eth0 to the primary list.
"""

from __future__ import annotations

import json
from pathlib import Path


REFERENCE_PLUGINS = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
PRIMARY_CONFLIST = "10-bridge.conflist"
PRIMARY_VERSION = "1.0.0"  # the highest the reference plugins 1.1 speak
BRIDGE = "cni0"


def install_bin_dir(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    if not (REFERENCE_PLUGINS / "bridge").exists():
        raise FileNotFoundError(f"{REFERENCE_PLUGINS}/bridge: install containernetworking-plugins (hack/setup)")
    for plugin in REFERENCE_PLUGINS.iterdir():
        link = bin_dir / plugin.name
        if not link.exists():
            link.symlink_to(plugin)


def primary_conflist(pod_cidr: str, ipam_dir: Path) -> dict[str, object]:
    return {
        "cniVersion": PRIMARY_VERSION,
        "name": "default",
        "plugins": [{
            "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "mtu": 1500,
            "ipam": {"type": "host-local", "dataDir": str(ipam_dir),
                     "ranges": [[{"subnet": pod_cidr}]], "routes": [{"dst": "0.0.0.0/0"}]},
        }],
    }


def install_conf_dir(conf_dir: Path, pod_cidr: str, ipam_dir: Path) -> None:
    """The primary conflist."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    tmp = conf_dir / f".{PRIMARY_CONFLIST}.tmp"
    tmp.write_text(json.dumps(primary_conflist(pod_cidr, ipam_dir), indent=2) + "\n")
    tmp.replace(conf_dir / PRIMARY_CONFLIST)
