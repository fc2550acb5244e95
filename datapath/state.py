"""A node's compiled entries handed to the datapath with what changed in them.

A producer that compiles incrementally (agent.compile.incremental) knows which
keys it touched since its previous state; `P4RuntimeDatapath.replace_state`
then diffs only those against what the target holds, instead of the whole
table. `base` names the state the change is relative to: a datapath that
holds another one (or none) takes the whole of `entries`, so a lost or
discarded state never leaves it wrong.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, replace

from datapath.entries import Entry

Key = tuple[object, ...]
_versions = itertools.count(1)


def next_version() -> int:
    """A number no other state of this process has."""
    return next(_versions)


@dataclass(frozen=True)
class CompiledState:
    entries: Mapping[Key, Entry]  # the whole state, by entry key; the producer's: read it, do not keep it
    version: int
    base: int | None = None  # the version `changed` is relative to; None: unknown, take everything
    changed: frozenset[Key] = frozenset()  # keys whose entry may differ from the one in `base`


def chain(older: CompiledState, newer: CompiledState) -> CompiledState:
    """`newer` relative to what `older` was relative to, with both their changes:
    the state to hand over when `older` never was. Unrelated: relative to nothing."""
    if older.base is None or newer.base != older.version:
        return replace(newer, base=None, changed=frozenset())
    return replace(newer, base=older.base, changed=older.changed | newer.changed)
