"""Where the local cluster keeps its state, and the ports it listens on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_state_dir() -> Path:
    base = os.environ.get("MULTINET_STATE") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "multinet"
    )
    return Path(base) / "cluster"


@dataclass(frozen=True)
class Ports:
    etcd_client: int = 2379
    etcd_peer: int = 2380
    apiserver: int = 6443
    controller_manager: int = 10257
    scheduler: int = 10259

    def shifted(self, offset: int) -> Ports:
        """Every port moved by `offset`, so several local clusters can run side by side."""
        return Ports(*(getattr(self, f) + offset for f in self.__dataclass_fields__))

    @classmethod
    def from_env(cls) -> Ports:
        """Defaults, shifted by $MULTINET_PORT_OFFSET when set."""
        raw = os.environ.get("MULTINET_PORT_OFFSET", "0")
        try:
            offset = int(raw)
        except ValueError:
            raise ValueError(f"MULTINET_PORT_OFFSET: expected an integer, got {raw!r}") from None
        return cls().shifted(offset)


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    def kubeconfig(self, user: str) -> Path:
        return self.root / f"{user}.kubeconfig"

    @property
    def ports_file(self) -> Path:
        return self.root / "ports.json"

    @property
    def netplan_file(self) -> Path:
        return self.root / "network.json"

    def pid_file(self, component: str) -> Path:
        return self.pids / f"{component}.json"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"
