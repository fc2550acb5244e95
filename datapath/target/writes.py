"""Write: one batch of updates, validated one by one, realized in one transaction.

CONTINUE_ON_ERROR (spec 12.2): each update stands alone and gets its own
error; the accepted ones reach the dataplane, whose transaction commits them
together. When the transaction itself fails, every accepted update of the
batch is reverted and gets that error, and the dataplane is rebuilt from the
store so kernel and store agree again. The kernel may also refuse single
changes after their updates were accepted (a queued route, at the next
settle or the commit): only those are taken back, each with its own error,
and the dataplane is rebuilt without them. An update of an entry that an
earlier one of the batch changed settles the queue first, so each update
meets the state its predecessors really left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from finsy.proto import p4r, rpc_code

from datapath import gcpause
from datapath.entries import P4Error, decode
from datapath.pipeline import Pipeline
from datapath.target.realizer import Dataplane, Refused
from datapath.target.store import Change, Store

log = logging.getLogger(__name__)
OPS = {p4r.Update.INSERT: "INSERT", p4r.Update.MODIFY: "MODIFY", p4r.Update.DELETE: "DELETE"}


class Writer:
    def __init__(self, pipeline: Pipeline, store: Store, dataplane: Dataplane) -> None:
        self.pipeline, self.store, self.dataplane = pipeline, store, dataplane

    def write(self, updates: list[p4r.Update]) -> list[P4Error | None]:
        """The error of each update, None for those applied."""
        with gcpause.paused():
            return self.dataplane.batch(lambda: self._write(updates))

    def _write(self, updates: list[p4r.Update]) -> list[P4Error | None]:
        b = _Batch([None] * len(updates))
        for i, update in enumerate(updates):
            try:
                change = self.accept(update, b)
            except P4Error as err:
                b.errors[i] = err
                continue
            b.accepted.append((i, change))
            b.touched.add(_key(change))
        try:
            self.dataplane.commit(self.store)
        except Refused as refused:
            self._take_back(b, refused.errors)
        except P4Error as err:
            log.error("write batch failed in the dataplane, rebuilding: %s", err.message)
            for i, change in reversed(b.accepted):
                self.store.revert(change)
                b.errors[i] = err
            b.refused = True
        if b.refused:
            self.dataplane.rebuild(self.store)
        return b.errors

    def _take_back(self, b: _Batch, refused: list[tuple[Change, P4Error]]) -> None:
        """Revert changes the dataplane refused after their updates were
        accepted; each update gets its refusal, and the dataplane is rebuilt
        from the store at the batch's end, without them."""
        if not refused:
            return
        log.error("the dataplane refused %d updates of the batch: %s", len(refused), refused[0][1].message)
        position = {id(change): n for n, (_, change) in enumerate(b.accepted)}
        gone = set()
        for change, err in refused:
            n = position[id(change)]
            self.store.revert(change)
            b.errors[b.accepted[n][0]] = err
            gone.add(n)
        b.accepted = [a for n, a in enumerate(b.accepted) if n not in gone]
        b.refused = True

    def accept(self, update: p4r.Update, b: _Batch) -> Change:
        op = OPS.get(update.type)
        if op is None:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"update type {update.type} unspecified")
        kind = update.entity.WhichOneof("entity")
        if kind == "direct_counter_entry":
            return self._direct_counter(op, update.entity.direct_counter_entry)
        if kind != "table_entry":
            raise P4Error(rpc_code.UNIMPLEMENTED, f"{kind}: only table entries and direct counters are writable")
        te = update.entity.table_entry
        if te.is_const:
            raise P4Error(rpc_code.INVALID_ARGUMENT, "is_const must be false in a write (spec 9.1)")
        if te.is_default_action:
            _check_default_write(op, te)
        # Spec 9.1.2: INSERT needs an action; a MODIFY without one leaves the
        # entry as it is; DELETE considers only the key.
        keep = op == "MODIFY" and not te.HasField("action")
        e = decode(te, self.pipeline, with_action=op == "INSERT" or (op == "MODIFY" and not keep))
        if e.key in b.touched:
            # An earlier update of this entry in the batch may still wait in
            # the dataplane's queue: learn its fate first, so that this one
            # meets the store as the kernel left it.
            self._take_back(b, self.dataplane.settle())
        if op != "DELETE":
            self._check_resources(e.table, te)
            self.dataplane.check(e)
        change = self.store.check(op, e)
        if keep:
            return Change(change.old, change.old)
        self.dataplane.apply(change)
        self.store.commit(change)
        return change

    def _check_resources(self, table: str, te: p4r.TableEntry) -> None:
        """What a table entry may carry besides key and action (p4runtime.proto, TableEntry)."""
        if ((te.HasField("counter_data") and not self.pipeline.table(table).counters)
                or te.HasField("meter_config") or te.HasField("meter_counter_data")):
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{table}: no such direct resource in this table")
        if te.counter_data.packet_count or te.counter_data.byte_count:
            # Spec "Direct Resources": counter_data would set the counter; kernel counters
            # start at 0 and cannot be set, so only zero (or unset) is honoured.
            raise P4Error(rpc_code.UNIMPLEMENTED, f"{table}: counter values cannot be written on this target")
        if te.idle_timeout_ns or te.HasField("time_since_last_hit"):
            # No table declares idle timeout support (P4Info idle_timeout_behavior NO_TIMEOUT).
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{table}: idle_timeout_ns is not supported by this table")

    def _direct_counter(self, op: str, dc: p4r.DirectCounterEntry) -> Change:
        """Spec "DirectCounterEntry": only MODIFY, of an existing entry's counter."""
        if op != "MODIFY":
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{op} of a direct counter: only MODIFY applies")
        table = self.pipeline.table_by_id(dc.table_entry.table_id)
        if table is None:
            raise P4Error(rpc_code.NOT_FOUND, f"unknown table id {dc.table_entry.table_id}")
        if not table.counters:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"table {table.name} has no direct counter")
        change = self.store.check("MODIFY", decode(dc.table_entry, self.pipeline, with_action=False))
        if dc.HasField("data"):
            # The counters are the kernel's (nft counters): they count, they cannot be set.
            raise P4Error(rpc_code.UNIMPLEMENTED, f"{table.name}: counter values cannot be written on this target")
        return Change(change.old, change.old)


@dataclass
class _Batch:
    """A Write in progress."""

    errors: list[P4Error | None]
    accepted: list[tuple[int, Change]] = field(default_factory=list)  # (update index, change), in order
    touched: set[object] = field(default_factory=set)  # the entry keys changed so far
    refused: bool = False  # the dataplane took some change back: it is rebuilt at the end


def _key(change: Change) -> object:
    e = change.new or change.old
    assert e is not None
    return e.key


def _check_default_write(op: str, te: p4r.TableEntry) -> None:
    """Writes of a default entry (spec 9.1): only MODIFY, no match; every
    table's default action is const here."""
    if op != "MODIFY":
        raise P4Error(rpc_code.INVALID_ARGUMENT, f"{op} of a default entry: only MODIFY applies to it")
    if te.match or te.priority:
        raise P4Error(rpc_code.INVALID_ARGUMENT, "a default entry has no match fields and no priority")
    raise P4Error(rpc_code.PERMISSION_DENIED, "the table's default action is const (NoAction)")
