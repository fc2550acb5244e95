"""The IPU target's two ways of sending one batch to nftables give the same
kernel state: the changes' nft text through `nft -f` in one namespace, the
same changes as one nfnetlink batch (nftelem.commit) in another, both on the
target's own empty pipeline; and a batch the kernel refuses changes nothing."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from datapath.entries import Entry, Exact
from datapath.netns import call_in
from datapath.target.features import Features
from datapath.target.kernel import nftelem
from datapath.target.kernel.context import nft_table
from datapath.target.kernel.nftelem import Counter, Element, Elements, Goto, Ref
from datapath.target.kernel.ruleset import empty_pipeline
from datapath.target.kernel.services import service_bytes, service_key
from tests.datapath.conftest import PREFIX, netns

TABLE = nft_table(f"{PREFIX}el")
EVERYTHING = Features(**{name: True for name in Features.__dataclass_fields__})


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    made: list[str] = []
    try:
        for side in ("text", "netlink"):
            name = f"{PREFIX}el-{side}"
            subprocess.run(["ip", "netns", "add", name], check=True)
            made.append(name)
            _nft(name, empty_pipeline(TABLE, EVERYTHING) + "\nadd chain inet {0} lb_2\nadd chain inet {0} lb6_1\n"
                 .format(TABLE))
        yield made[0], made[1]
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "delete", name], check=False)


def _nft(ns: str, script: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script, text=True, check=True)


def _state(ns: str) -> list[str]:
    """The table's sets, maps and counters, each element list in a stable order
    (a hash set lists its elements in an order of its own)."""
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "inet", TABLE],
                         capture_output=True, text=True, check=True).stdout
    found = []
    for item in json.loads(out)["nftables"]:
        for kind in ("set", "map", "counter"):
            if kind in item:
                body: dict[str, Any] = dict(item[kind])
                body.pop("handle", None)
                body["elem"] = sorted(json.dumps(e, sort_keys=True) for e in body.get("elem", []))
                found.append(f"{kind} {json.dumps(body, sort_keys=True)}")
    return sorted(found)


def _service(network: int, vip: str, port: int) -> Entry:
    return Entry("service6" if ":" in vip else "service", (
        ("network_id", Exact(network)), ("vip", Exact(int(ipaddress.ip_address(vip)))), ("proto", Exact(6)),
        ("port", Exact(port))), ())


def _bucket(e: Entry, i: int, backend: str | None = None, port: int = 8080) -> Element:
    key = (f"{service_key(e)} . {i}", service_bytes(e) + i.to_bytes(4, sys.byteorder))
    if backend is None:
        return Element(*key)
    address = ipaddress.ip_address(backend)
    return Element(*key, f"{backend} . {port}", address.packed + port.to_bytes(2, "big") + b"\0\0")


def _insert(e: Entry, chain: str, name: str, backends: list[str]) -> list[nftelem.Change]:
    suffix = "6" if e.table == "service6" else ""
    key, raw = service_key(e), service_bytes(e)
    return [Counter(True, TABLE, name),
            Elements(True, TABLE, f"svc{suffix}", [Element(key, raw, f"goto {chain}", Goto(chain))]),
            Elements(True, TABLE, f"svc_counters{suffix}", [Element(key, raw, f'"{name}"', Ref(name))]),
            Elements(True, TABLE, f"backends{suffix}", [_bucket(e, i, b) for i, b in enumerate(backends)])]


def _both(text_ns: str, netlink_ns: str, changes: list[nftelem.Change]) -> None:
    _nft(text_ns, "\n".join(c.text() for c in changes) + "\n")
    call_in(netlink_ns, lambda: nftelem.commit(changes))


@netns
def test_text_and_netlink_make_the_same_kernel_state_and_a_refused_batch_changes_nothing(
        namespaces: tuple[str, str]) -> None:
    text_ns, netlink_ns = namespaces
    web, db = _service(7, "10.96.0.10", 443), _service(7, "10.96.0.11", 5432)
    web6 = _service(7, "fd00:96::10", 443)
    port = ('"mnp7a"', b"mnp7a".ljust(16, b"\0"))
    _both(text_ns, netlink_ns, [Elements(True, TABLE, "port_net", [Element(*port, "7", (7).to_bytes(4, sys.byteorder))]),
                                Elements(True, TABLE, "port_zone", [Element(*port, "3", (3).to_bytes(2, sys.byteorder))])]
          + _insert(web, "lb_2", "svc_7_web", ["10.1.0.2", "10.1.0.3"])
          + _insert(db, "lb_2", "svc_7_db", ["10.1.0.4", "10.1.0.5"])
          + _insert(web6, "lb6_1", "svc6_7_web", ["fd00:1::2"]))
    first = _state(netlink_ns)
    assert first == _state(text_ns)
    assert sum('"10.1.0.' in line for line in first) == 1  # the backends map holds them, not empty sets

    # An endpoint swap of web, db removed whole (its elements, then its counter), the port gone.
    key, raw = service_key(db), service_bytes(db)
    _both(text_ns, netlink_ns, [
        Elements(False, TABLE, "port_net", [Element(*port)]), Elements(False, TABLE, "port_zone", [Element(*port)]),
        Elements(False, TABLE, "backends", [_bucket(web, 1)]),
        Elements(True, TABLE, "backends", [_bucket(web, 1, "10.1.0.9")]),
        Elements(False, TABLE, "svc", [Element(key, raw)]),
        Elements(False, TABLE, "svc_counters", [Element(key, raw)]),
        Elements(False, TABLE, "backends", [_bucket(db, 0), _bucket(db, 1)]),
        Counter(False, TABLE, "svc_7_db")])
    second = _state(netlink_ns)
    assert second == _state(text_ns) and second != first
    assert not any("svc_7_db" in line or "10.1.0.4" in line for line in second)

    # Refused: web's counter is still named by its map element (EBUSY); the
    # swap before it in the same batch must not take effect either.
    with pytest.raises(OSError) as refused:
        call_in(netlink_ns, lambda: nftelem.commit([
            Elements(False, TABLE, "backends", [_bucket(web, 0)]),
            Elements(True, TABLE, "backends", [_bucket(web, 0, "10.1.0.99")]),
            Counter(False, TABLE, "svc_7_web")]))
    assert refused.value.errno == 16, refused.value
    assert _state(netlink_ns) == second
