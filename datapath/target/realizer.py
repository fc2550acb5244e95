"""The seam between the P4Runtime servicer and whatever realizes the tables.

The servicer owns the P4Runtime semantics (validation, the store, batches,
status); a `Dataplane` turns accepted changes into forwarding state. The
kernel dataplane is a set of per-table `Realizer`s, one for each table of the
pipeline description, found by table name in a `Registry`; a table without one
is refused when the dataplane is built, not when its first entry arrives.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar, Generic, Protocol, TypeVar

from finsy.proto import rpc_code

from datapath.entries import Entry, P4Error
from datapath.pipeline import Pipeline, Table
from datapath.target.store import Change, Key, Store

Counts = tuple[int, int]  # packets, bytes


class Realizer(ABC):
    """Realizes one table of the pipeline."""

    table: ClassVar[str]  # set by `Registry.realizes`

    def check(self, e: Entry) -> None:
        """Refuse (P4Error) an entry this realization cannot express. Runs
        before the update touches any state, so a refusal changes nothing."""

    @abstractmethod
    def apply(self, old: Entry | None, new: Entry | None) -> None:
        """Realize one accepted change: INSERT (`old` None), MODIFY, DELETE
        (`new` None). What can wait is queued for the batch's transaction."""

    def finish(self, store: Store) -> None:
        """The batch's updates are all applied; queue what depends on the
        table's whole contents (`store`) before the transaction commits."""

    def counters(self, entries: Sequence[Entry]) -> dict[Key, Counts]:
        """The direct counter of each entry, by entry key. Only tables whose
        description has direct counters need it."""
        raise P4Error(rpc_code.UNIMPLEMENTED, f"{self.table}: this table has no direct counter")

    @classmethod
    def reads_counters(cls) -> bool:
        return cls.counters is not Realizer.counters


R = TypeVar("R", bound=Realizer)
T = TypeVar("T")


class Refused(Exception):
    """A commit in which the kernel refused some changes of the batch (each
    with its error) after their updates were accepted. The servicer takes
    back those changes and rebuilds the dataplane from the store: the rest of
    the batch stands."""

    def __init__(self, errors: list[tuple[Change, P4Error]]) -> None:
        super().__init__(f"{len(errors)} changes refused")
        self.errors = errors


class MissingRealizer(LookupError):
    """Tables of a pipeline that a dataplane has no realizer for."""


class Registry(Generic[R]):
    """Realizer classes of one dataplane, by the table they realize."""

    def __init__(self, dataplane: str) -> None:
        self.dataplane = dataplane
        self._by_table: dict[str, type[R]] = {}

    def realizes(self, table: str) -> Callable[[type[R]], type[R]]:
        def register(cls: type[R]) -> type[R]:
            if table in self._by_table:
                raise ValueError(f"{self.dataplane}: table {table!r} has two realizers")
            cls.table = table
            self._by_table[table] = cls
            return cls
        return register

    def missing(self, p: Pipeline) -> list[str]:
        """What the pipeline needs and this registry lacks: a table without a
        realizer, or a counted table whose realizer cannot read counters."""
        gaps = []
        for t in p.tables:
            cls = self._by_table.get(t.name)
            if cls is None:
                gaps.append(t.name)
            elif t.counters and not cls.reads_counters():
                gaps.append(f"{t.name} (direct counter)")
        return gaps

    def classes(self, p: Pipeline) -> list[tuple[Table, type[R]]]:
        """Each table of `p` with its realizer class, in the description's order."""
        gaps = self.missing(p)
        if gaps:
            raise MissingRealizer(f"pipeline {p.name}: the {self.dataplane} dataplane has no realizer for "
                                  + ", ".join(gaps))
        return [(t, self._by_table[t.name]) for t in p.tables]

    def tables(self) -> Mapping[str, type[R]]:
        return dict(self._by_table)


class Dataplane(Protocol):
    """What the servicer asks of the realization. Calls come one batch at a
    time (the servicer holds its lock), inside `batch`: `check`/`apply` per
    update, then `commit`; after a failed commit, `rebuild` from the store."""

    def batch(self, fn: Callable[[], T]) -> T:
        """Run `fn` (a whole Write: its checks, applies and commit) where the
        dataplane's calls cost least: the kernel's run on its worker thread,
        so a batch pays one hand-over instead of one per update."""

    def reset(self) -> None:
        """Remove every realized entry and install the empty pipeline."""

    def check(self, e: Entry) -> None:
        """The realizer's refusal of an entry it cannot express (before any change)."""

    def apply(self, change: Change) -> None:
        """Realize one accepted change (P4Error when the dataplane refuses it)."""

    def settle(self) -> list[tuple[Change, P4Error]]:
        """Send what this batch has queued so far; the changes the kernel refused."""

    def commit(self, store: Store) -> None:
        """Make the batch's changes take effect together (one transaction);
        P4Error when it fails whole, Refused when only some changes failed."""

    def rebuild(self, store: Store) -> None:
        """Realize the store's contents from scratch (after a failed commit)."""

    def counters(self, table: str, entries: Sequence[Entry]) -> dict[Key, Counts]:
        """Direct counters of `entries` of `table`, by entry key."""

    def close(self) -> None: ...
