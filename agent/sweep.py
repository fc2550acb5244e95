"""GC's last pass: node-side links of ours that no record owns."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable


from agent import links
from agent.plan import is_link_name
from agent.record import AttachmentRecord

log = logging.getLogger(__name__)


def sweep_unowned_links(records: Callable[[], Iterable[AttachmentRecord]], prefix: str,
                        namespaces: Iterable[str | None]) -> list[str]:
    """Node-side veths named as this agent names them (prefix + attachment
    hash) that no record of any network owns: left behind by a record that
    was lost. The links are listed before the records are read, and an ADD
    writes its record before it creates a link, so one under way is safe."""
    found: dict[str | None, list[str]] = {}
    for netns in dict.fromkeys(namespaces):
        try:
            with links.rtnl(netns) as ipr:
                found[netns] = [n for n in links.veth_names(ipr) if is_link_name(prefix, n)]
        except links.NetnsGone:
            continue
    owned = {(link.netns, link.name) for r in records() for link in r.links}
    errors: list[str] = []
    for netns, names in found.items():
        unowned = [n for n in names if (netns, n) not in owned]
        if not unowned:
            continue
        try:
            with links.rtnl(netns) as ipr:
                for name in unowned:
                    log.warning("GC: removing %s, which no attachment record owns", name)
                    links.delete_link(ipr, name)
        except (OSError, links.NetlinkError, links.NetnsGone) as err:
            errors.append(f"delete unowned links in {netns or 'the agent namespace'}: {err}")
    return errors
