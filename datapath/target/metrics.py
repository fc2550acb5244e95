"""`/metrics` of the IPU target, the Prometheus way (prometheus_client).

Per scrape the kernel is read once (kernel/stats.py: counter objects and
the service buckets, never the rules) and the store's policy_pod entries
give each policy group's policies (their `metadata`, which the agent sets to
the selecting NetworkPolicies). Series:

  multinet_ipu_network_{packets,bytes}_total{network, verdict}
  multinet_ipu_policy_{packets,bytes}_total{network, direction, policy, verdict}
      allowed: new flows a group let through (first packets; established
      flows pass before policy); denied: every packet it dropped. A group is
      the union of the policies selecting its pods, so each of them is
      credited with the group's verdicts.
  multinet_ipu_service_{packets,bytes}_total{network, vip, protocol, port}   (the service tables' direct counters)
  multinet_ipu_service_backend_connections_total{network, vip, protocol, port, backend}
  multinet_ipu_p4runtime_updates_total{type, table}, _write_errors_total{code},
  multinet_ipu_p4runtime_{write,read}_seconds (histograms)
  multinet_ipu_spoofed_{packets,bytes}_total (what the source guard dropped, kernel/guard.py)
  multinet_ipu_counters_read_seconds (how long the last kernel read took)
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from datapath.entries import Entry, Exact
from datapath.target.kernel.guard import SPOOFED_COUNTER
from datapath.target.kernel.stats import KernelStats
from datapath.target.realizer import Counts

_PROTOCOL_NAMES = {6: "TCP", 17: "UDP", 132: "SCTP"}
_VERDICTS = {"a": "allowed", "d": "denied"}
_DIRECTIONS = {0: "ingress", 1: "egress"}


class P4RuntimeMetrics:
    """What the servicer counts of the P4Runtime calls it serves."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.updates = Counter("multinet_ipu_p4runtime_updates", "P4Runtime updates written, by type and table",
                               ["type", "table"], registry=registry)
        self.errors = Counter("multinet_ipu_p4runtime_write_errors", "P4Runtime updates refused, by canonical code",
                              ["code"], registry=registry)
        self.write_seconds = Histogram("multinet_ipu_p4runtime_write_seconds", "Time to serve one Write batch",
                                       registry=registry)
        self.read_seconds = Histogram("multinet_ipu_p4runtime_read_seconds", "Time to serve one Read",
                                      registry=registry)


class KernelCollector(Collector):
    """Reads the dataplane's counters at scrape time."""

    def __init__(self, stats: Callable[[], KernelStats], policy_pods: Callable[[], Iterable[Entry]],
                 registry: CollectorRegistry) -> None:
        self.stats, self.policy_pods = stats, policy_pods
        registry.register(self)

    def collect(self) -> Iterable[Any]:
        start = time.monotonic()
        stats = self.stats()
        # This scrape's own read (a Gauge collected beside us would show the previous one's).
        yield GaugeMetricFamily("multinet_ipu_counters_read_seconds", "How long the last read of the kernel's "
                                "counters took", value=time.monotonic() - start)
        yield from _verdicts(stats, _group_policies(self.policy_pods()))
        yield from _services(stats)
        yield from _spoofed(stats)


def _spoofed(stats: KernelStats) -> Iterable[CounterMetricFamily]:
    """What the source guard dropped (packets from a port with a source that is not its own)."""
    packets, octets = stats.counters.get(SPOOFED_COUNTER, (0, 0))
    text = "Packets the source guard dropped: sent from a port with an address or MAC not its own"
    return [CounterMetricFamily("multinet_ipu_spoofed_packets", f"{text} (packets)", value=packets),
            CounterMetricFamily("multinet_ipu_spoofed_bytes", f"{text} (bytes)", value=octets)]


def _family(name: str, text: str, labels: list[str]) -> tuple[CounterMetricFamily, CounterMetricFamily]:
    return (CounterMetricFamily(f"{name}_packets", f"{text} (packets)", labels=labels),
            CounterMetricFamily(f"{name}_bytes", f"{text} (bytes)", labels=labels))


def _group_policies(pods: Iterable[Entry]) -> dict[tuple[int, int, int], set[str]]:
    """(network, direction, group) -> the policies naming it, from the entries' metadata."""
    out: dict[tuple[int, int, int], set[str]] = defaultdict(set)
    for e in pods:
        net, direction = e.get("network_id"), e.get("direction")
        if isinstance(net, Exact) and isinstance(direction, Exact) and e.actions:
            key = (int(net.value), int(direction.value), int(e.actions[0].params[0]))
            out[key] |= {p for p in e.metadata.decode(errors="replace").split(",") if p}
    return out


def _verdicts(stats: KernelStats, policies: dict[tuple[int, int, int], set[str]]) -> Iterable[CounterMetricFamily]:
    net_totals: dict[tuple[str, str], Counts] = defaultdict(lambda: (0, 0))
    policy_totals: dict[tuple[str, str, str, str], Counts] = defaultdict(lambda: (0, 0))
    for name, (packets, octets) in stats.counters.items():
        if not name.startswith("pst_"):
            continue
        _, verdict, net, direction, group = name.split("_")
        v = _VERDICTS[verdict]
        _add(net_totals, (net, v), packets, octets)
        for policy in policies.get((int(net), int(direction), int(group)), ()):
            _add(policy_totals, (net, _DIRECTIONS[int(direction)], policy, v), packets, octets)
    nets = _family("multinet_ipu_network", "Policy verdicts per network", ["network", "verdict"])
    pols = _family("multinet_ipu_policy", "Policy verdicts per NetworkPolicy",
                   ["network", "direction", "policy", "verdict"])
    for families, totals in ((nets, net_totals), (pols, policy_totals)):
        for labels, (packets, octets) in sorted(totals.items()):
            families[0].add_metric(list(labels), packets)
            families[1].add_metric(list(labels), octets)
    return [*nets, *pols]


def _add(totals: dict[Any, Counts], key: Any, packets: int, octets: int) -> None:
    have = totals[key]
    totals[key] = (have[0] + packets, have[1] + octets)


def _services(stats: KernelStats) -> Iterable[CounterMetricFamily]:
    labels = ["network", "vip", "protocol", "port"]
    svc = _family("multinet_ipu_service", "New connections to a Service VIP (the service table's direct counter)",
                  labels)
    for name, (packets, octets) in sorted(stats.counters.items()):
        if name.startswith(("svc_", "svc6_")):
            _, net, vip, number, port = name.split("_")
            value = int(vip)
            address = str(ipaddress.IPv4Address(value) if name.startswith("svc_") else ipaddress.IPv6Address(value))
            where = [net, address, _PROTOCOL_NAMES.get(int(number), number), port]
            svc[0].add_metric(where, packets)
            svc[1].add_metric(where, octets)
    backends = CounterMetricFamily("multinet_ipu_service_backend_connections",
                                   "New connections sent to one backend of a Service", labels=[*labels, "backend"])
    # In the kernel's order, unsorted: 100,000 of them at 10,000 Services, and
    # sorting them took a third of building the scrape.
    for (_, bnet, bvip, bproto, bport, backend), (connections, _) in stats.backends.items():
        backends.add_metric([str(bnet), bvip, _PROTOCOL_NAMES.get(bproto) or str(bproto), str(bport), backend],
                            connections)
    return [*svc, backends]


def serve_metrics(address: str, port: int, registry: CollectorRegistry) -> threading.Thread:
    """Serve `registry` on http://address:port/metrics (in the caller's namespace)."""
    _, thread = start_http_server(port, address, registry=registry)
    return thread
