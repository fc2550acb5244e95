"""The controller's `/metrics` (prometheus_client, default registry).

Series: reconciles by work kind and outcome and their latency
(`multinet_controller_reconciles_total{kind,result}`,
`multinet_controller_reconcile_seconds{kind}`), and IPAM pool usage per
network and range (`multinet_ipam_pool_addresses{network,range}`: how many
the range can hand out; `multinet_ipam_pool_allocated{network,range}`: how
many are held), the ranges being each family's pod subnet and the service
ranges. Pool usage is computed at scrape time from the allocator's memory
and the watch cache: no apiserver call per scrape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.allocator import Allocator
from controller.index import Index
from controller.networks import params_verdict
from podnetwork.ipam import Pool
from podnetwork.params import FamilyParams, NetworkParams

RECONCILES = Counter("multinet_controller_reconciles", "Work keys reconciled, by kind and result "
                     "(ok, retry: a temporary error, failed: a permanent one, error: a bug)", ["kind", "result"])
SECONDS = Histogram("multinet_controller_reconcile_seconds", "Time of one reconcile, by kind", ["kind"],
                    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


class IpamCollector(Collector):
    def __init__(self, index: Index, allocator: Allocator) -> None:
        self.index = index
        self.allocator = allocator

    def collect(self) -> Iterator[Metric]:
        size = GaugeMetricFamily("multinet_ipam_pool_addresses", "Addresses a range of a network can hand out",
                                 labels=["network", "range"])
        held = GaugeMetricFamily("multinet_ipam_pool_allocated", "Addresses of a range of a network held "
                                 "(pods' and Services' IPAllocations)", labels=["network", "range"])
        for network in sorted(self.index.keys("network")):
            obj = self.index.get("network", network) or {}
            _, binding = params_verdict(self.index, (obj.get("spec") or {}).get("parametersRefs"))
            if binding is None or binding.params is None:
                continue  # no parameters, or not usable: no pool
            used = self.allocator.used(network)
            for pool in _pools(binding.params):
                labels = [network, str(pool.subnet)]
                size.add_metric(labels, pool.size())
                held.add_metric(labels, sum(1 for ip in used if ip in pool.subnet))
        yield size
        yield held


def _pools(params: NetworkParams) -> Iterable[Pool]:
    for family in params.families():
        yield Pool.from_family(family)
    for cidr in params.service_cidrs:
        yield Pool.from_family(FamilyParams(subnet=cidr, gateway=None, excludes=()))


def serve(address: str, port: int) -> None:
    """Serve the default registry on http://address:port/metrics (a daemon thread); a
    standby replica serves it too, with no reconciles counted."""
    start_http_server(port, address, registry=REGISTRY)


def watch_ipam(index: Index, allocator: Allocator) -> None:
    """Add the active replica's pool usage to what `serve` shows."""
    REGISTRY.register(IpamCollector(index, allocator))
