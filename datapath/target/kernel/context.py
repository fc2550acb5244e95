"""What the kernel realizers share: the namespace's netlink handle, the nftables
table and the batch's pending transaction, the features found, and the
pieces of state several tables use (`part`: the networks, tunnels, groups).

Everything here runs on the dataplane's worker thread inside the IPU
namespace (`Kernel`), so none of it locks; it is made there too, so that its
netlink sockets are the namespace's.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from finsy.proto import rpc_code
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from datapath.entries import Entry, Exact, Lpm, P4Error, ip_text, mac_text
from datapath.pipeline import table_family
from datapath.target import features as feat
from datapath.target.kernel import nftelem
from datapath.target.kernel.routes import RouteQueue
from datapath.target.realizer import Realizer, Registry

RULE_PRIORITY = 1000  # our `iif` rules; below main (32766)
TABLE_BASE = 0x4D000000  # routing table of network n is TABLE_BASE + n (never 253..255)
VXLAN_PORT = 4789
NUD_PERMANENT = 0x80
_GONE = (2, 3, 19)  # ENOENT, ESRCH, ENODEV: "already gone" on removal

S = TypeVar("S")


def nft_table(prefix: str) -> str:
    """The target's nftables table (inet family) for a link prefix."""
    return (prefix + "ipu").replace("-", "_")


def nft(script: str) -> subprocess.CompletedProcess[str]:
    """Feed a script to `nft -f -` in the caller's namespace."""
    return subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=300)


def tunnel_mac(vtep: int) -> str:
    """The MAC a node's VXLAN devices answer to, derived from its VTEP address
    so that peers can program it without asking (locally administered)."""
    return mac_text((0x0A << 40) | (vtep << 8))


@dataclass(frozen=True)
class Family:
    """What differs between IPv4 and IPv6 in the kernel's realization."""

    version: int
    af: int  # the netlink family
    nft: str  # the nftables payload protocol: "ip" | "ip6"
    addr_type: str  # the nftables set type of an address
    suffix: str  # of the nftables objects of this family's tables ("" | "6")
    width: int

    def text(self, value: int) -> str:
        if self.version == 4:  # once per route of a Write: inet_ntop costs a quarter of ipaddress's str
            return socket.inet_ntop(socket.AF_INET, self.raw(value))
        return ip_text(value, self.width)  # not inet_ntop, which writes ::ffff:a01:203 as ::ffff:10.1.2.3

    def raw(self, value: int) -> bytes:
        """An address as the kernel holds it: network byte order."""
        return value.to_bytes(self.width // 8, "big")

    @property
    def any(self) -> str:
        """The default route's destination."""
        return "0.0.0.0/0" if self.version == 4 else "::/0"


V4 = Family(4, socket.AF_INET, "ip", "ipv4_addr", "", 32)
V6 = Family(6, socket.AF_INET6, "ip6", "ipv6_addr", "6", 128)
FAMILIES = (V4, V6)


def family(table: str) -> Family:
    """The family of a table of the pipeline (its name tells: `route6` is IPv6)."""
    return V6 if table_family(table) == 6 else V4


@dataclass
class Pending:
    """One kernel transaction in three phases: create objects, change
    elements, delete objects. Counters and elements may come as nftelem
    changes: a batch of only those goes to the kernel over netlink, the rest
    as one `nft -f` in which they render as text. `ahead`: nft commands
    that make what nothing uses yet (a chain), which may go first on their own."""

    ahead: list[str] = field(default_factory=list)
    create: list[str | nftelem.Counter] = field(default_factory=list)
    elements: list[str | nftelem.Elements] = field(default_factory=list)
    delete: list[str | nftelem.Counter] = field(default_factory=list)

    def _changes(self) -> list[str | nftelem.Change]:
        return [*self.create, *self.elements, *self.delete]

    def script(self) -> str:
        return "\n".join(self.ahead + [c if isinstance(c, str) else c.text() for c in self._changes()]) + "\n"

    def netlink_only(self) -> list[nftelem.Change] | None:
        """The changes past `ahead`, when none of them needs nft."""
        changes = self._changes()
        if any(isinstance(c, str) for c in changes):
            return None
        return [c for c in changes if not isinstance(c, str)]


class KernelContext:
    def __init__(self, ipr: IPRoute, prefix: str, features: feat.Features,
                 vtep: str | None = None, underlay: str | None = None) -> None:
        self.ipr, self.prefix, self.features = ipr, prefix, features
        self.vtep, self.underlay = vtep, underlay
        self.table = nft_table(prefix)
        # Routes, the bulk of a large Write, are queued and sent packed (routes.py):
        # through pyroute2 a route cost about 3 ms, one round trip each about 0.2 ms.
        self.routes = RouteQueue()
        self.owner: object = None  # the change being applied: what a queued route's refusal belongs to
        self.pending = Pending()
        self._indexes: dict[str, int] = {}
        self._parts: dict[object, Any] = {}
        self.layer2: set[int] = set()  # networks bridged here (segments.py), which cannot also be routed

    def part(self, kind: Callable[[KernelContext], S]) -> S:
        """The one instance of a piece of state that several realizers share
        (the networks, the policy groups), made on first use."""
        if kind not in self._parts:
            self._parts[kind] = kind(self)
        value: S = self._parts[kind]
        return value

    def forget(self) -> None:
        """Drop all shared state (the kernel was reset) and any queued change."""
        self._parts.clear()
        self.layer2.clear()
        self.pending = Pending()
        self.routes.clear()
        self._indexes.clear()

    def close(self) -> None:
        self.ipr.close()
        self.routes.close()

    # --- kernel calls -----------------------------------------------------------

    def route(self, f: Family, table: int, dst: Lpm, oif: int | None) -> None:
        """Queue: the route to `dst` in `table`, out of link `oif`, a blackhole when None."""
        self.routes.replace(self.owner, f.af, table, f.raw(dst.value), dst.prefix_len, oif)

    def unroute(self, f: Family, table: int, dst: Lpm) -> None:
        """Queue: remove the route to `dst` from `table`; already gone is fine."""
        self.routes.delete(self.owner, f.af, table, f.raw(dst.value), dst.prefix_len)

    def settle(self) -> None:
        """Send the queued routes, before a kernel change that may depend on
        them (a link's removal, a network's default route) and at commit; the
        refused stay in `routes.refused`. Links may change after this, so the
        port indexes looked up so far are forgotten too."""
        self._indexes.clear()
        try:
            self.routes.flush()
        except OSError as err:
            raise P4Error(rpc_code.INTERNAL, f"route batch: the kernel's replies were lost: {err}") from err

    def commit(self, pending: Pending) -> None:
        """One kernel transaction of `pending`: over netlink when nothing in
        it needs nft (after its `ahead` part), else one `nft -f`."""
        changes = pending.netlink_only()
        if changes is None:
            self.nft_checked(pending.script())
            return
        if pending.ahead:
            self.nft_checked("\n".join(pending.ahead) + "\n")
        if changes:
            try:
                nftelem.commit(changes)
            except OSError as err:
                raise P4Error(rpc_code.INTERNAL, f"nf_tables refused the batch: {err}") from err

    def nft_checked(self, script: str) -> None:
        result = nft(script)
        if result.returncode != 0:
            raise P4Error(rpc_code.INTERNAL, f"nft transaction failed: {result.stderr.strip()[:2000]}")

    def nft_json(self, *args: str) -> dict[str, Any]:
        """`nft -j <args>` of our table's objects; empty when there is nothing to list."""
        result = subprocess.run(["nft", "-j", *args], capture_output=True, text=True, timeout=120)
        found: dict[str, Any] = json.loads(result.stdout) if result.returncode == 0 else {}
        return found

    def write_sysctl(self, path: str, value: str) -> None:
        with open(f"/proc/sys/{path}", "w") as f:
            f.write(value)

    def quiet(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """A netlink removal where "already gone" is fine."""
        try:
            fn(*args, **kwargs)
        except NetlinkError as err:
            if err.code not in _GONE:
                raise

    def index(self, link: str) -> int:
        # One ioctl in this thread's namespace (the IPU's), where a netlink
        # lookup costs a round trip and a parse per call; kept until the next
        # settle(), since the routes of a Write mostly share a few ports.
        found = self._indexes.get(link)
        if found is not None:
            return found
        try:
            found = self._indexes[link] = socket.if_nametoindex(link)
        except OSError:
            raise P4Error(rpc_code.FAILED_PRECONDITION,
                          f"port {link!r}: no such link in the IPU namespace") from None
        return found


# --- reading entries ---------------------------------------------------------------


def exact(e: Entry, name: str) -> int | str:
    m = e.get(name)
    assert isinstance(m, Exact), f"{e.table}.{name}"
    return m.value


def network_of(e: Entry) -> int:
    return int(exact(e, "network_id"))


def param(e: Entry, index: int = 0) -> int:
    """An integer parameter of the entry's (first) action."""
    return int(e.actions[0].params[index])


def dst_of(e: Entry) -> Lpm:
    """A route's destination; an omitted LPM field is the default route (prefix 0)."""
    dst = e.get("dst")
    assert dst is None or isinstance(dst, Lpm), f"{e.table}.dst"
    return dst if dst is not None else Lpm(0, 0)


# --- the kernel's realizers ---------------------------------------------------------


class KernelRealizer(Realizer):
    """A table realized in the IPU namespace's kernel."""

    # Whether its updates only queue routes (ctx.route) and change nothing
    # routes depend on: the queue is settled before any other table's update.
    queues_routes: ClassVar[bool] = False

    def __init__(self, ctx: KernelContext) -> None:
        self.ctx = ctx


REALIZERS: Registry[KernelRealizer] = Registry("kernel")
realizes = REALIZERS.realizes
