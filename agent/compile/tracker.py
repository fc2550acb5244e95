"""Which objects of one kind changed between two listings, found by identity.

The agent's caches replace an object's dict when it changes (the watch decodes
a new one) and hand out the same dicts until then, so an object seen before is
recognised by `id()` in one dict lookup, and only new dicts are read. The
tracker holds every dict it has seen, so an id is never reused while it
counts. A dict changed in place is not seen: callers treat the objects they
pass as values.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.compile.objects import Obj, key_of

ObjKey = tuple[str, str]


class Tracker:
    def __init__(self) -> None:
        self._held: dict[int, tuple[ObjKey, Obj]] = {}

    def changes(self, items: Iterable[Obj]) -> dict[ObjKey, Obj | None]:
        """Key -> the new object, or None for one gone, since the last call."""
        now = {id(obj): obj for obj in items}
        out: dict[ObjKey, Obj | None] = {}
        held = self._held
        if now.keys() == held.keys():
            return out
        for i in held.keys() - now.keys():
            out.setdefault(held.pop(i)[0], None)
        for i in now.keys() - held.keys():
            obj = now[i]
            key = key_of(obj)
            held[i] = (key, obj)
            out[key] = obj  # a replaced object: its old dict went above, under the same key
        return out
