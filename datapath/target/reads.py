"""Read: table entries (wildcards, filters, default entries) and direct counters.

Entries and their counters are taken under the servicer's lock, so a Read
sees the tables between two Write batches, never in the middle of one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from finsy.proto import p4r, rpc_code

from datapath.entries import Entry, P4Error, decode, encode
from datapath.pipeline import NO_ACTION, Pipeline, Table
from datapath.target.realizer import Counts, Dataplane
from datapath.target.store import Key, ReadFilter, Store, matches_filter


class Reader:
    def __init__(self, pipeline: Pipeline, store: Store, dataplane: Dataplane, lock: threading.Lock) -> None:
        self.pipeline, self.store, self.dataplane, self.lock = pipeline, store, dataplane, lock

    def entity(self, wanted: p4r.Entity) -> list[p4r.Entity]:
        """What one entity of a ReadRequest selects."""
        kind = wanted.WhichOneof("entity")
        if kind is None:
            raise P4Error(rpc_code.INVALID_ARGUMENT, "entity: one kind must be set")
        if kind == "table_entry":
            return [p4r.Entity(table_entry=te) for te in self.table_entries(wanted.table_entry)]
        if kind == "direct_counter_entry":
            return list(self._direct_counters(wanted.direct_counter_entry))
        raise P4Error(rpc_code.UNIMPLEMENTED, f"{kind}: only table entries and direct counters can be read")

    def table_entries(self, wanted: p4r.TableEntry, with_action: bool = True) -> list[p4r.TableEntry]:
        if wanted.is_default_action:
            return list(self._defaults(wanted))
        with self.lock:
            entries = self._select(wanted)
            counts = self._counts(entries) if wanted.HasField("counter_data") else {}
        out = []
        for e in entries:
            te = encode(e, self.pipeline, with_action)
            if wanted.HasField("counter_data") and self.pipeline.table(e.table).counters:
                te.counter_data.packet_count, te.counter_data.byte_count = counts.get(e.key, (0, 0))
            out.append(te)
        return out

    def _select(self, wanted: p4r.TableEntry) -> list[Entry]:
        if wanted.table_id == 0:
            return list(self.store.entries())
        table = self.pipeline.table_by_id(wanted.table_id)
        if table is None:
            raise P4Error(rpc_code.NOT_FOUND, f"unknown table id {wanted.table_id}")
        filt = read_filter(wanted, table, self.pipeline)
        return [e for e in self.store.entries(table.name) if matches_filter(e, filt)]

    def _counts(self, entries: list[Entry]) -> dict[Key, Counts]:
        """Direct counters of the counted tables among `entries`, each table read once."""
        counts: dict[Key, Counts] = {}
        for t in self.pipeline.tables:
            mine = [e for e in entries if e.table == t.name] if t.counters else []
            if mine:
                counts.update(self.dataplane.counters(t.name, mine))
        return counts

    def _defaults(self, wanted: p4r.TableEntry) -> Iterator[p4r.TableEntry]:
        """The default entry of one table, or of every table (table_id 0); never
        part of other reads (spec, "Wildcard Reads": is_default_action)."""
        if wanted.match:
            raise P4Error(rpc_code.INVALID_ARGUMENT, "a default entry read has no match fields")
        tables = self.pipeline.tables
        if wanted.table_id:
            table = self.pipeline.table_by_id(wanted.table_id)
            if table is None:
                raise P4Error(rpc_code.NOT_FOUND, f"unknown table id {wanted.table_id}")
            tables = (table,)
        for t in tables:
            out = p4r.TableEntry(table_id=t.id, is_default_action=True, is_const=True)
            out.action.action.action_id = self.pipeline.action(NO_ACTION).id
            yield out

    def _direct_counters(self, wanted: p4r.DirectCounterEntry) -> Iterator[p4r.Entity]:
        """DirectCounterEntry reads: every counted table (table_id 0), one table, or one entry."""
        te = wanted.table_entry
        table = self.pipeline.table_by_id(te.table_id) if te.table_id else None
        if te.table_id and table is None:
            raise P4Error(rpc_code.NOT_FOUND, f"unknown table id {te.table_id}")
        if table is not None and not table.counters:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"table {table.name} has no direct counter")
        query = p4r.TableEntry()
        query.CopyFrom(te)
        query.ClearField("action")
        query.counter_data.SetInParent()
        found = self.table_entries(query, with_action=False)  # a counter's entry is its key
        if te.match and not found:
            raise P4Error(rpc_code.NOT_FOUND, f"{table.name if table else te.table_id}: no such entry")
        counted = {t.id for t in self.pipeline.tables if t.counters}
        for out in found:
            if out.table_id not in counted:
                continue
            entity = p4r.Entity()
            entity.direct_counter_entry.data.CopyFrom(out.counter_data)
            out.ClearField("counter_data")
            out.ClearField("action")
            entity.direct_counter_entry.table_entry.CopyFrom(out)
            yield entity


def read_filter(wanted: p4r.TableEntry, table: Table, p: Pipeline) -> ReadFilter:
    """Spec 9.1.x "Wildcard Reads": a given match is a whole key (at most one
    entry); priority, action id and metadata filter when not at their defaults."""
    key = None
    if wanted.match:
        e = decode(wanted, p, with_action=False, filter=True)
        missing = [f.name for f in table.fields if f.match == "exact" and e.get(f.name) is None]
        if missing:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{table.name}: read match is not a whole key (no {missing})")
        key = e.match
    action = None
    if wanted.action.WhichOneof("type") == "action" and wanted.action.action.action_id:
        a = p.action_by_id(wanted.action.action.action_id)
        if a is None or a.name not in table.actions:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{table.name}: action id {wanted.action.action.action_id} "
                                                     "is not one of the table's")
        action = a.name
    return ReadFilter(key, wanted.priority, action, wanted.metadata)
