"""Kernel feature probing and the link helpers' ownership rules (root, netns)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

import pytest

from agent import links
from tests.support import cni as testing
from tests.support.cni import TEST_PREFIX as PREFIX

pytestmark = pytest.mark.netns


@pytest.fixture
def netns() -> Iterator[testing.Namespaces]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces")
    spaces = testing.Namespaces(PREFIX)
    yield spaces
    spaces.close()


def test_probe_tells_known_from_unknown_kinds(netns: testing.Namespaces) -> None:
    assert links.kernel_has_link_kind("veth", PREFIX) is True
    assert links.kernel_has_link_kind("nosuchkind", PREFIX) is False
    with links.rtnl(None) as ipr:
        assert links.index_of(ipr, f"{PREFIX}probe") is None  # the probe never leaves a link


def test_delete_respects_owner_mac_and_group(netns: testing.Namespaces) -> None:
    ns = netns.new("links")
    fd = links.open_netns(ns)
    sessions = links.Sessions(())
    try:
        with sessions.of(ns) as session:
            batch = session.batch()
            batch.new_veth("a0", "a0p", fd, 1500, mac="02:00:00:00:00:a0", group=4242)
            batch.new_veth("b0", "b0p", fd, 1500, mac="02:00:00:00:00:b0", group=4242)
            batch.new_veth("c0", "c0p", fd, 1500, mac="02:00:00:00:00:c0")
            batch.commit()
        with links.rtnl(ns) as ipr:
            assert links.delete_link(ipr, "c0", owner_mac="02:00:00:00:00:ff") is False  # not ours
            assert links.index_of(ipr, "c0") is not None
            links.delete_group(ipr, 4242)
            assert links.index_of(ipr, "a0") is None and links.index_of(ipr, "b0") is None
            assert links.index_of(ipr, "c0") is not None
            links.delete_group(ipr, 4242)  # an empty group is fine
            with pytest.raises(ValueError):
                links.delete_group(ipr, 0)
            assert links.delete_link(ipr, "c0", owner_mac="02:00:00:00:00:C0") is True
            assert links.delete_link(ipr, "c0") is False  # missing is fine
    finally:
        os.close(fd)
    with pytest.raises(links.NetnsGone):
        links.open_netns(f"{PREFIX}-never-made")


def test_batch_makes_links_up_with_addresses_and_routes(netns: testing.Namespaces) -> None:
    """One datagram creates a veth pair (the peer born in another namespace,
    in its link group) and looks it up; the next brings the peer up with
    addresses and routes."""
    node, pod = netns.new("node"), netns.new("pod")
    fd = links.open_netns(pod)
    sessions = links.Sessions((node,))
    try:
        with sessions.of(node) as session:
            made = session.batch()
            made.new_veth("r0", "v0", fd, 1400, peer_mac="02:00:00:00:01:01", peer_group=77)
            r0 = made.get_link("r0")
            made.commit()
        assert r0.index > 0 and r0.peer_index > 0
        with sessions.of(pod) as session:
            conf = session.batch()
            conf.set_up(r0.peer_index)
            conf.add_address(r0.peer_index, "10.9.0.2", 24)
            conf.add_address(r0.peer_index, "fd09::2", 64)
            conf.add_address(r0.peer_index, "10.9.0.2", 24)  # present already: fine
            conf.add_route(r0.peer_index, "10.8.0.0", 16, "10.9.0.1", onlink=True)
            conf.add_route(r0.peer_index, "10.7.0.0", 16)
            conf.add_route(r0.peer_index, "::", 0, "fd09::1", onlink=True, replace=True)
            conf.commit()
    finally:
        os.close(fd)
        sessions.close()
    state = testing.link(pod, "v0")
    assert state is not None and state.up and state.mtu == 1400 and state.mac == "02:00:00:00:01:01"
    assert {"10.9.0.2/24", "fd09::2/64"} <= state.addresses
    rep = testing.link(node, "r0")
    assert rep is not None and rep.up and rep.mtu == 1400
    with links.rtnl(pod) as ipr:
        assert {"10.8.0.0/16", "10.7.0.0/16", "::/0"} <= links.routes_via(ipr, r0.peer_index)
        links.delete_group(ipr, 77)  # the pod end was born in the group
        assert links.index_of(ipr, "v0") is None
    v4 = testing.run("ip", "-n", pod, "-4", "route", "show", "10.8.0.0/16").stdout
    assert v4 == ""  # gone with the link


def test_batch_reports_the_failed_request(netns: testing.Namespaces) -> None:
    """A refused request is named with the kernel's errno; tolerated ones
    (missing on delete) are not errors; the requests around it still ran."""
    ns = netns.new("err")
    with links.Sessions(()).of(ns) as session:
        batch = session.batch()
        batch.delete_link("nosuch0")  # missing: fine
        batch.delete_group(999)  # an empty group: fine
        batch.add_address(4242, "10.1.0.1", 24)  # no link 4242
        batch.delete_link("nosuch1")
        with pytest.raises(links.NetlinkBatchError) as caught:
            batch.commit()
    assert caught.value.errno == errno.ENODEV
    assert "add address 10.1.0.1/24" in str(caught.value)
    with pytest.raises(ValueError):
        session.batch().delete_group(0)
