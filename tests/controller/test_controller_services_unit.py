"""Which families a Service on a secondary network gets a VIP in (pure)."""

from __future__ import annotations

import pytest

from controller.services import vip_families


@pytest.mark.parametrize("policy,families,available,expected", [
    (None, None, (4, 6), [4]),  # SingleStack is the default
    ("SingleStack", ["IPv6"], (4, 6), [6]),
    ("SingleStack", ["IPv4"], (6,), [6]),  # defaulted from the cluster's IPv4 range: passed over
    ("PreferDualStack", ["IPv4"], (4, 6), [4, 6]),
    ("PreferDualStack", ["IPv6", "IPv4"], (4, 6), [6, 4]),
    ("PreferDualStack", ["IPv4"], (4,), [4]),
    ("RequireDualStack", ["IPv6", "IPv4"], (4, 6), [6, 4]),
    ("PreferDualStack", None, (), []),  # no service range: the datapath uses spec.clusterIPs
    ("RequireDualStack", None, (), []),
])
def test_families(policy: str | None, families: list[str] | None, available: tuple[int, ...],
                  expected: list[int]) -> None:
    assert vip_families(policy, families, available) == (expected, None)


@pytest.mark.parametrize("available,have", [((4,), "IPv4"), ((6,), "IPv6")])
def test_require_dual_stack_on_a_single_stack_network_is_refused(available: tuple[int, ...], have: str) -> None:
    families, refusal = vip_families("RequireDualStack", ["IPv4", "IPv6"], available)
    assert families == [] and refusal is not None
    assert f"RequireDualStack needs an IPv4 and an IPv6 service range; the network has {have} only" in refusal
