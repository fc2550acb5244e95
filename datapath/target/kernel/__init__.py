"""The IPU target's kernel dataplane: the pipeline realized by routing and nftables."""

from datapath.target.kernel.dataplane import Kernel

__all__ = ["Kernel"]
