"""The controller's `/metrics`, scraped over HTTP from the running controller."""

from __future__ import annotations

import ipaddress
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.controller.controller_support import ControllerProcess, Kube, Networks, pod_gated
from tests.support.wait import wait_for

pytestmark = pytest.mark.cluster
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for (n, lbl), v in samples.items() if n == name and labels.items() <= dict(lbl).items())


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
    after = scrape(controller.metrics_url)
    assert value(after, "multinet_ipam_pool_allocated", **pool) == 3
    grew = value(after, "multinet_controller_reconciles_total", kind="Pod", result="ok") - \
        value(before, "multinet_controller_reconciles_total", kind="Pod", result="ok")
    assert grew >= 3
    assert value(after, "multinet_controller_reconcile_seconds_count", kind="Network") > \
        value(before, "multinet_controller_reconcile_seconds_count", kind="Network")
    kube.core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
    wait_for("the addresses freed", lambda: value(scrape(controller.metrics_url), "multinet_ipam_pool_allocated",
                                                  **pool) == 0)
