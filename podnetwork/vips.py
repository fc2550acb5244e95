"""A Service's VIPs on its secondary network (names.SERVICE_VIP_ANNOTATION).

The controller writes them comma-separated, one per family, primary first;
the agent serves them. Both read them here: the first address of each family
is that family's VIP, and an entry that is not an address is passed over.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def parse_service_vips(text: str) -> list[str]:
    """The annotation's addresses in order, blanks dropped."""
    return [a.strip() for a in text.split(",") if a.strip()]


def first_per_family(addresses: Iterable[str | None]) -> dict[int, str]:
    """Family (4, 6) -> its first address, families in the order first seen."""
    out: dict[int, str] = {}
    for address in addresses:
        try:
            version = ipaddress.ip_address(address or "").version
        except ValueError:
            continue
        out.setdefault(version, str(address))
    return out
