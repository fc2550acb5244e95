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
from collections.abc import Collection, Iterable

from datapath.client.p4rt import NotPrimaryError, P4RuntimeClient, WriteError, diff
from datapath.entries import ActionCall, Entry, Exact, entry, ip, mac, prefix, version_of
from datapath.pipeline import family_table
from datapath.ports import PortAttachment
from datapath.state import CompiledState
from datapath.state import Key as Key  # re-exported: callers name entry keys by it

log = logging.getLogger(__name__)


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
        self._state: dict[Key, Entry] = {}  # compiled policy/service/remote routes
        self._state_version: int | None = None  # the CompiledState `_state` is, if one
        self.installed: dict[Key, Entry] = {}
        # `installed` equals the desired state of these ports and `_state` (the
        # last write succeeded); a change can then be diffed on its keys alone.
        self._exact_for: dict[str, PortAttachment] | None = None
        self._port_entries: dict[Key, Entry] = {}
        self._port_entries_for: dict[str, PortAttachment] | None = None
        self.connected = False
        self.sessions = 0  # sessions opened (the first connect and each reconnect)

    @property
    def state(self) -> list[Entry]:
        return list(self._state.values())

    @state.setter
    def state(self, entries: Iterable[Entry] | CompiledState) -> None:
        self._take(entries)
        self._exact_for = None  # set outside a sync: the next one diffs everything

    # --- the Datapath protocol -------------------------------------------------

    def attach(self, port: PortAttachment) -> None:
        """Program the port; raises WriteError when the target refused one of the port's own entries."""
        self._port_write(port, port)

    def detach(self, port: PortAttachment) -> None:
        """Remove the port's entries; raises WriteError when the target refused one of them."""
        self._port_write(port, None)

    def _port_write(self, port: PortAttachment, new: PortAttachment | None) -> None:
        with self.lock:
            try:
                self._port_change(port, self.ports.get(port.representor), new)
            except WriteError as err:
                own = {e.key for e in port_entries(port)}
                if any(e.key in own for e in err.refused(code=None)):
                    raise
                # Only other entries were refused again (a whole diff after a refused
                # round; the sync loop retries and reports them): this port's are done,
                # and one refused entry must not fail every other pod's ADD or DEL.
                log.warning("%s %s: done; other entries are still refused: %s",
                            "attach" if new is not None else "detach", port.representor, err)

    def _port_change(self, port: PortAttachment, old: PortAttachment | None, new: PortAttachment | None) -> None:
        exact = self._exact()
        if new is None:
            self.ports.pop(port.representor, None)
        else:
            self.ports[port.representor] = new
        if exact:
            self._exact_for = dict(self.ports)
        self._sync(_keys(old, new) if exact else None)

    # --- agent-compiled state --------------------------------------------------

    def replace_state(self, entries: Iterable[Entry] | CompiledState) -> int:
        """Replace the node's policy/service/remote-route entries; returns updates written.
        A `CompiledState` relative to the one held is diffed on its changed keys only."""
        with self.lock:
            return self._sync(self._take(entries))

    def _take(self, entries: Iterable[Entry] | CompiledState) -> frozenset[Key] | None:
        """Hold the new state; the keys that may have changed, None when unknown."""
        held, self._state_version = self._state_version, None
        if not isinstance(entries, CompiledState):
            self._state = {e.key: e for e in entries}
            return None
        self._state_version = entries.version
        if entries.base is None or entries.base != held:
            self._state = dict(entries.entries)
            return None
        for key in entries.changed:
            if key in entries.entries:
                self._state[key] = entries.entries[key]
            else:
                self._state.pop(key, None)
        return entries.changed

    def desired(self) -> dict[Key, Entry]:
        out = dict(self._ports_map())
        out.update(self._state)  # the compiled state wins over a port's entry of the same key
        return out

    def _ports_map(self) -> dict[Key, Entry]:
        if self._port_entries_for != self.ports:
            self._port_entries = {e.key: e for port in self.ports.values() for e in port_entries(port)}
            self._port_entries_for = dict(self.ports)
        return self._port_entries

    def _exact(self) -> bool:
        """Whether `installed` is the desired state of the ports and state held now."""
        return self._exact_for is not None and self._exact_for == self.ports

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
                self._exact_for = None
                self.installed = {e.key: e for e in self.client.read()}
            return self._sync()

    def _connect(self) -> None:
        self._exact_for = None
        if not self.client.connect() and not self.client.claim():
            raise NotPrimaryError(f"{self.client.address}: another client holds a higher election id")
        self.client.set_pipeline(reconcile=True)
        # The target may have restarted (empty) or kept everything (agent restart).
        self.installed = {e.key: e for e in self.client.read()}
        self.connected = True
        self.sessions += 1

    def _sync(self, changed: Collection[Key] | None = None) -> int:
        """Write the difference between the target and the desired state: over
        `changed` alone when the target held the rest already, else over everything."""
        if not self.connected or self.client.stream_closed.is_set():
            log.info("session to %s lost; reconnecting", self.client.address)
            self._connect()
        exact = changed is not None and self._exact()
        self._exact_for = None  # until this write has landed
        if exact:
            assert changed is not None
            ports = self._ports_map()
            # In the pipeline's table order, as a whole diff writes them: a port before its routes.
            rank = {t.name: i for i, t in enumerate(self.client.pipeline.tables)}
            keys = sorted(changed, key=lambda k: rank.get(str(k[0]), len(rank)))
            have = {k: self.installed[k] for k in keys if k in self.installed}
            want = {k: e for k in keys if (e := self._state.get(k, ports.get(k))) is not None}
        else:
            have, want = self.installed, self.desired()
        updates = diff(have, want)
        if updates:
            self._write(updates)
        if exact:
            for k in have.keys() - want.keys():
                del self.installed[k]
            self.installed.update(want)
        else:
            self.installed = want
        self._exact_for = dict(self.ports)
        return len(updates)

    def _write(self, updates: list[tuple[str, Entry]]) -> None:
        if not self.client.primary and not self.client.claim():
            raise NotPrimaryError(f"{self.client.address}: another client is primary")
        try:
            self.client.write(updates)
        except WriteError:
            # Some updates failed: learn what the target really holds, then re-raise.
            self.installed = {e.key: e for e in self.client.read()}
            raise


def _keys(*ports: PortAttachment | None) -> set[Key]:
    return {e.key for port in ports if port is not None for e in port_entries(port)}
