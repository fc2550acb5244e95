"""`multinet top`: the IPU targets' per-network and per-Service counters,
refreshed at a terminal.

It scrapes each target's `/metrics` (the same series Prometheus collects),
adds them up per network and per Service VIP across nodes, and shows the
totals with their rates since the previous refresh.
"""

from __future__ import annotations

import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Totals = dict[tuple[str, ...], float]


@dataclass
class Snapshot:
    at: float
    series: dict[str, Totals] = field(default_factory=dict)  # sample name -> labels -> value, summed over targets


_WANTED = {  # sample -> the labels it is summed by
    "multinet_ipu_network_packets_total": ("network", "verdict"),
    "multinet_ipu_network_bytes_total": ("network", "verdict"),
    "multinet_ipu_service_packets_total": ("network", "vip", "protocol", "port"),
}


def parse(texts: Iterable[str], at: float) -> Snapshot:
    snap = Snapshot(at, {name: defaultdict(float) for name in _WANTED})
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                keys = _WANTED.get(sample.name)
                if keys is not None:
                    snap.series[sample.name][tuple(sample.labels.get(k, "") for k in keys)] += sample.value
    return snap


def scrape(urls: Iterable[str], timeout: float = 5) -> Snapshot:
    texts = []
    for url in urls:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            texts.append(response.read().decode())
    return parse(texts, time.monotonic())


def _rate(now: Snapshot, before: Snapshot | None, name: str, key: tuple[str, ...]) -> float:
    if before is None or now.at <= before.at:
        return 0.0
    return max(0.0, now.series[name].get(key, 0) - before.series[name].get(key, 0)) / (now.at - before.at)


def render(now: Snapshot, before: Snapshot | None = None) -> str:
    """The view as text: one row per network, then one per Service VIP."""
    packets, octets = (now.series[f"multinet_ipu_network_{k}_total"] for k in ("packets", "bytes"))
    nets = sorted({k[0] for k in packets}, key=lambda n: int(n) if n.isdigit() else 0)
    lines = [f"{'NETWORK':>8} {'ALLOWED':>10} {'/s':>8} {'DENIED':>10} {'/s':>8} {'ALLOWED B':>12} {'DENIED B':>12}"]
    for net in nets:
        a, d = (net, "allowed"), (net, "denied")
        lines.append(f"{net:>8} {packets.get(a, 0):>10.0f} {_rate(now, before, 'multinet_ipu_network_packets_total', a):>8.1f}"
                     f" {packets.get(d, 0):>10.0f} {_rate(now, before, 'multinet_ipu_network_packets_total', d):>8.1f}"
                     f" {octets.get(a, 0):>12.0f} {octets.get(d, 0):>12.0f}")
    services = now.series["multinet_ipu_service_packets_total"]
    lines += ["", f"{'NETWORK':>8} {'SERVICE':<32} {'CONNECTIONS':>12} {'/s':>8}"]
    for key in sorted(services):
        net, vip, proto, port = key
        where = f"{vip}:{port}/{proto}" if ":" not in vip else f"[{vip}]:{port}/{proto}"
        lines.append(f"{net:>8} {where:<32} {services[key]:>12.0f} "
                     f"{_rate(now, before, 'multinet_ipu_service_packets_total', key):>8.1f}")
    return "\n".join(lines)


def run(urls: list[str], interval: float, once: bool) -> int:
    before = None
    while True:
        now = scrape(urls)
        text = render(now, before)
        if once:
            print(text)
            return 0
        print("\x1b[H\x1b[2J" + time.strftime("%H:%M:%S") + f"  {len(urls)} target(s), every {interval:g}s\n" + text,
              flush=True)
        before = now
        time.sleep(interval)
