"""`P4RuntimeDatapath`: the `Datapath` the node agent calls, over P4Runtime.

It keeps the node's desired entries (ports from attach/detach, plus the
policy/service/remote-route state the agent compiles) and a mirror of what the
target holds. Every change is a diff written as one batch; on (re)connect it
reads the target and writes only the difference, so an agent restart does not
disturb traffic and a target restart is repaired.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from datapath.client.p4rt import NotPrimaryError, P4RuntimeClient, WriteError, diff
from datapath.entries import ActionCall, Entry, Exact, entry, ip, mac, prefix, version_of
from datapath.pipeline import family_table
from datapath.ports import PortAttachment

log = logging.getLogger(__name__)
Key = tuple[object, ...]


def port_entries(port: PortAttachment) -> list[Entry]:
    """Entries for one attachment: port -> network, host routes, neighbours
    and the source guard's (address, MAC) per address (of either family),
    and for each IPv6 gateway a host route that drops, so the IPU answers
    neighbour discovery for it (IPv4 gateways are answered by proxy ARP) and
    packets to the gateway itself die, as IPv4 ones do in the network's
    tunnel."""
    net = int(port.network_id)
    # A port without addresses is on a layer 2 (address-less) network: bridged, not routed.
    join = "set_port" if port.ips else "set_bridge"
    out = [entry("port", {"port": Exact(port.representor)}, ActionCall(join, (net,)))]
    for cidr in port.ips:
        address = cidr.split("/")[0]
        v = version_of(address)
        out.append(entry(family_table("route", v), {"network_id": Exact(net), "dst": prefix(address)},
                         ActionCall("to_port", (port.representor,))))
        out.append(entry(family_table("neighbor", v), {"port": Exact(port.representor), "ip": Exact(ip(address))},
                         ActionCall("set_dmac", (mac(port.mac),))))
        out.append(entry(family_table("source", v), {"port": Exact(port.representor), "ip": Exact(ip(address))},
                         ActionCall("allow_source", (mac(port.mac),))))
    for gateway in port.gateways:
        if version_of(gateway) == 6:
            out.append(entry("route6", {"network_id": Exact(net), "dst": prefix(gateway)}, ActionCall("drop")))
    return out


class P4RuntimeDatapath:
    def __init__(self, client: P4RuntimeClient) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.ports: dict[str, PortAttachment] = {}
        self.state: list[Entry] = []  # compiled policy/service/remote routes
        self.installed: dict[Key, Entry] = {}
        self.connected = False
        self.sessions = 0  # sessions opened (the first connect and each reconnect)

    # --- the Datapath protocol -------------------------------------------------

    def attach(self, port: PortAttachment) -> None:
        """Program the port; raises WriteError when the target refused one of the port's own entries."""
        with self.lock:
            self.ports[port.representor] = port
            try:
                self._sync()
            except WriteError as err:
                own = {e.key for e in port_entries(port)}
                if any(e.key in own for e in err.refused(code=None)):
                    raise
                # Only entries of the compiled state were refused again (the
                # sync loop retries and reports them): the port is programmed.
                log.warning("attach %s: the port is programmed; other entries are still refused: %s",
                            port.representor, err)

    def detach(self, port: PortAttachment) -> None:
        with self.lock:
            self.ports.pop(port.representor, None)
            self._sync()

    # --- agent-compiled state --------------------------------------------------

    def replace_state(self, entries: Iterable[Entry]) -> int:
        """Replace the node's policy/service/remote-route entries; returns updates written."""
        with self.lock:
            self.state = list(entries)
            return self._sync()

    def desired(self) -> dict[Key, Entry]:
        out: dict[Key, Entry] = {}
        for port in self.ports.values():
            for e in port_entries(port):
                out[e.key] = e
        for e in self.state:
            out[e.key] = e
        return out

    def reconnect(self) -> int:
        """(Re)open the session, keep the target's pipeline if it matches, and repair the difference."""
        with self.lock:
            self._connect()
            return self._sync()

    def resync(self) -> int:
        """Periodic repair: read what the target holds and write the difference."""
        with self.lock:
            if not self.connected or self.client.stream_closed.is_set():
                self._connect()
            else:
                self.installed = {e.key: e for e in self.client.read()}
            return self._sync()

    def _connect(self) -> None:
        if not self.client.connect() and not self.client.claim():
            raise NotPrimaryError(f"{self.client.address}: another client holds a higher election id")
        self.client.set_pipeline(reconcile=True)
        # The target may have restarted (empty) or kept everything (agent restart).
        self.installed = {e.key: e for e in self.client.read()}
        self.connected = True
        self.sessions += 1

    def _sync(self) -> int:
        if not self.connected or self.client.stream_closed.is_set():
            log.info("session to %s lost; reconnecting", self.client.address)
            self._connect()
        want = self.desired()
        updates = diff(self.installed, want)
        if not updates:
            return 0
        if not self.client.primary and not self.client.claim():
            raise NotPrimaryError(f"{self.client.address}: another client is primary")
        try:
            self.client.write(updates)
        except WriteError:
            # Some updates failed: learn what the target really holds, then re-raise.
            self.installed = {e.key: e for e in self.client.read()}
            raise
        self.installed = want
        return len(updates)
