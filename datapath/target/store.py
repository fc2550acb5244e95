"""The target's table state and the P4Runtime Write semantics over it.

Validation happens here, before anything reaches the kernel: an INSERT of an
existing key is ALREADY_EXISTS, a MODIFY/DELETE of a missing one NOT_FOUND, an
INSERT into a full table RESOURCE_EXHAUSTED (P4Runtime spec, section 12.2).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from finsy.proto import rpc_code

from datapath.entries import Entry, P4Error
from datapath.pipeline import PIPELINE, Pipeline

Key = tuple[object, ...]


@dataclass(frozen=True)
class Change:
    """One accepted update: old is None for INSERT, new is None for DELETE."""

    old: Entry | None
    new: Entry | None


class Store:
    def __init__(self, p: Pipeline = PIPELINE) -> None:
        self.pipeline = p
        self.tables: dict[str, dict[Key, Entry]] = {t.name: {} for t in p.tables}

    def check(self, op: str, e: Entry) -> Change:
        """Validate one update against the current contents; no state change."""
        table = self.tables[e.table]
        old = table.get(e.key)
        if op == "INSERT":
            if old is not None:
                raise P4Error(rpc_code.ALREADY_EXISTS, f"{e.table}: entry already exists")
            if len(table) >= self.pipeline.table(e.table).size:
                raise P4Error(rpc_code.RESOURCE_EXHAUSTED,
                              f"{e.table}: table full ({self.pipeline.table(e.table).size} entries)")
            return Change(None, e)
        if old is None:
            raise P4Error(rpc_code.NOT_FOUND, f"{e.table}: no such entry")
        return Change(old, e if op == "MODIFY" else None)

    def commit(self, c: Change) -> None:
        e = c.new or c.old
        assert e is not None
        if c.new is None:
            del self.tables[e.table][e.key]
        else:
            self.tables[e.table][e.key] = c.new

    def revert(self, c: Change) -> None:
        self.commit(Change(c.new, c.old))

    def entries(self, table: str | None = None) -> Iterator[Entry]:
        names = [table] if table else list(self.tables)
        for name in names:
            yield from self.tables[name].values()

    def clear(self) -> None:
        for table in self.tables.values():
            table.clear()


@dataclass(frozen=True)
class ReadFilter:
    """What a table Read selects; None, 0 and b"" are wildcards (spec 9.1, "Wildcard Reads")."""

    key: tuple[object, ...] | None = None  # a whole match key: at most one entry
    priority: int = 0
    action: str | None = None
    metadata: bytes = b""


def matches_filter(e: Entry, f: ReadFilter) -> bool:
    return ((f.key is None or e.match == f.key) and (not f.priority or f.priority == e.priority)
            and (f.action is None or (bool(e.actions) and e.actions[0].name == f.action))
            and (not f.metadata or f.metadata == e.metadata))
