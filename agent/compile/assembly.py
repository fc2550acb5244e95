"""The node's whole state as one map, kept up to date object by object.

Each compiled object (a pod's routes, a Service, a pod's policy) owns a list
of entries; the assembled map holds, for every key, the entry of the first
owner in owner order that has one, which is what the from-scratch compile
keeps when two objects claim one key (it reads objects in key order, the first
wins). Replacing an owner's entries touches only its keys, and the keys whose
visible entry changed are collected for the datapath's diff.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from datapath.entries import Entry
from datapath.state import Key

Owner = tuple[str, ...]


class Assembly:
    def __init__(self) -> None:
        self._entries: dict[Key, Entry] = {}
        self._owned: dict[Owner, dict[Key, Entry]] = {}
        self._claims: dict[Key, dict[Owner, Entry]] = {}  # every owner's entry, per key
        self.changed: set[Key] = set()  # keys whose visible entry changed since `take_changed`

    @property
    def entries(self) -> Mapping[Key, Entry]:
        return self._entries

    def owners(self) -> list[Owner]:
        return list(self._owned)

    def set(self, owner: Owner, entries: Iterable[Entry]) -> None:
        """Replace what `owner` contributes; its first entry per key counts."""
        new: dict[Key, Entry] = {}
        for e in entries:
            new.setdefault(e.key, e)
        old = self._owned.pop(owner, {})
        if new:
            self._owned[owner] = new
        if new == old:
            return
        for key, e in old.items():
            if new.get(key) != e:
                del self._claims[key][owner]
                self._show(key)
        for key, e in new.items():
            if old.get(key) != e:
                self._claims.setdefault(key, {})[owner] = e
                self._show(key)

    def drop(self, owner: Owner) -> None:
        self.set(owner, ())

    def take_changed(self) -> frozenset[Key]:
        out, self.changed = frozenset(self.changed), set()
        return out

    def _show(self, key: Key) -> None:
        claims = self._claims.get(key)
        if not claims:
            self._claims.pop(key, None)
            if self._entries.pop(key, None) is not None:
                self.changed.add(key)
            return
        winner = claims[min(claims)] if len(claims) > 1 else next(iter(claims.values()))
        if self._entries.get(key) != winner:
            self._entries[key] = winner
            self.changed.add(key)
