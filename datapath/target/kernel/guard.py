"""The source guard (anti-spoofing): the source and source6 tables.

A routed port is guarded from the moment it joins its network (`guarded`
set, kept by the port realizer): prerouting drops every packet it sends
whose (port, source address, source MAC) is not an element of the family's
`source` set (ruleset.py). Neighbour discovery and DAD come from the pod's
link-local or unspecified address, which no entry names; they pass with a
MAC the port holds for any of its addresses (`source_mac`, counted here
over both families' entries).

Bridged (address-less) ports are not guarded here: they carry no addresses
to check, and their frames never reach the inet table.
"""

from __future__ import annotations

from datapath.entries import Entry, mac_text
from datapath.target.kernel.context import KernelContext, KernelRealizer, exact, family, param, realizes

SPOOFED_COUNTER = "spoofed"  # the named counter of the guard's drops (ruleset.py)


def guard_port(ctx: KernelContext, link: str, add: bool) -> None:
    """Put a routed port under the guard, or take it out (queued in the batch)."""
    verb = "add" if add else "delete"
    ctx.pending.elements.append(f'{verb} element inet {ctx.table} guarded {{ "{link}" }}')


class SourceMacs:
    """(port, MAC) pairs of the source entries, counted across both families."""

    def __init__(self, ctx: KernelContext) -> None:
        self.ctx = ctx
        self.refs: dict[tuple[str, str], int] = {}

    def acquire(self, link: str, mac: str) -> None:
        key = (link, mac)
        if key not in self.refs:
            self._element("add", link, mac)
        self.refs[key] = self.refs.get(key, 0) + 1

    def release(self, link: str, mac: str) -> None:
        key = (link, mac)
        self.refs[key] -= 1
        if not self.refs[key]:
            del self.refs[key]
            self._element("delete", link, mac)

    def _element(self, verb: str, link: str, mac: str) -> None:
        self.ctx.pending.elements.append(f'{verb} element inet {self.ctx.table} source_mac {{ "{link}" . {mac} }}')


@realizes("source")
class SourceRealizer(KernelRealizer):
    def apply(self, old: Entry | None, new: Entry | None) -> None:
        if old is not None:
            self._change("delete", old)
            self.ctx.part(SourceMacs).release(*self._port_mac(old))
        if new is not None:
            self.ctx.index(str(exact(new, "port")))  # a missing port fails the update, as a neighbour's does
            self._change("add", new)
            self.ctx.part(SourceMacs).acquire(*self._port_mac(new))

    def _change(self, verb: str, e: Entry) -> None:
        f = family(self.table)
        link, mac = self._port_mac(e)
        self.ctx.pending.elements.append(f'{verb} element inet {self.ctx.table} source{f.suffix} '
                                         f'{{ "{link}" . {f.text(int(exact(e, "ip")))} . {mac} }}')

    @staticmethod
    def _port_mac(e: Entry) -> tuple[str, str]:
        return str(exact(e, "port")), mac_text(param(e))


@realizes("source6")
class Source6Realizer(SourceRealizer):
    pass
