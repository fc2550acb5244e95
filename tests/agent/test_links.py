"""Kernel feature probing and the link helpers' ownership rules (root, netns)."""

from __future__ import annotations

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
    try:
        with links.rtnl(ns) as ipr:
            links.create_veth(ipr, "a0", "02:00:00:00:00:a0", 1500, "a0p", fd, group=4242)
            links.create_veth(ipr, "b0", "02:00:00:00:00:b0", 1500, "b0p", fd, group=4242)
            links.create_veth(ipr, "c0", "02:00:00:00:00:c0", 1500, "c0p", fd)
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
