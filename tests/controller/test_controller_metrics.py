"""The controller's `/metrics`, scraped over HTTP from the running controller."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from tests.controller.controller_support import ControllerProcess, Kube, Networks, pod_gated
from tests.support.wait import wait_for
from tests.support.metrics import scrape, value

pytestmark = pytest.mark.cluster






def test_reconciles_and_pool_usage_show_as_pods_are_allocated(
        kube: Kube, namespace: str, networks: Networks, make_pod: Any, controller: ControllerProcess) -> None:
    if controller.external:
        pytest.skip("the running cluster's controller is not this test's: its /metrics port is unknown here")
    before = scrape(controller.metrics_url)
    net = networks.ready_network("10.97.0.0/28", gateway="10.97.0.1")
    pool = {"network": net, "range": "10.97.0.0/28"}
    # A /28 less its network, broadcast and gateway addresses.
    size = wait_for("the pool's size", lambda: value(scrape(controller.metrics_url), "multinet_ipam_pool_addresses",
                                                     **pool))
    assert size == ipaddress.ip_network("10.97.0.0/28").num_addresses - 3
    for pod in ("a", "b", "c"):
        make_pod(pod, [{"podNetworkName": net}])
    for pod in ("a", "b", "c"):
        wait_for(f"{pod} ungated", lambda p=pod: not pod_gated(kube, namespace, p))  # type: ignore[misc]
    # A worker counts its reconcile when the reconcile returns, a moment after the
    # gate it lifted is seen here: wait for the count rather than read it once.
    ok_before = value(before, "multinet_controller_reconciles_total", kind="Pod", result="ok")
    after = wait_for("three ok Pod reconciles counted", lambda: (lambda m: m if value(
        m, "multinet_controller_reconciles_total", kind="Pod", result="ok") - ok_before >= 3 else None)(
        scrape(controller.metrics_url)))
    assert value(after, "multinet_ipam_pool_allocated", **pool) == 3
    assert value(after, "multinet_controller_reconcile_seconds_count", kind="Network") > \
        value(before, "multinet_controller_reconcile_seconds_count", kind="Network")
    kube.core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
    wait_for("the addresses freed", lambda: value(scrape(controller.metrics_url), "multinet_ipam_pool_allocated",
                                                  **pool) == 0)
