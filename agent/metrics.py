"""The node agent's `/metrics` (prometheus_client, default registry).

Series: CNI verbs and their latency (`multinet_cni_requests_total{verb,
result}`, `multinet_cni_request_seconds{verb}`), and the P4Runtime client's
writes, errors and latency toward the node's IPU (`multinet_p4runtime_*`,
counted by datapath/client/metrics.py in the same registry). The verdict,
Service and backend counters are the IPU target's own `/metrics`
(`multinet ipu --metrics-port`), read from the pipeline's counters where
they are kept.

Wiring: agent/cli.py calls `serve(address, port)` once at start
(`multinet agent --metrics-port`); agent/server.py measures each CNI
invocation with `cni_request(verb)`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from prometheus_client import REGISTRY, Counter, Histogram, start_http_server

from datapath.client import metrics as _p4runtime  # noqa: F401  (registers the client's series)

REQUESTS = Counter("multinet_cni_requests", "CNI invocations served, by verb and result", ["verb", "result"])
SECONDS = Histogram("multinet_cni_request_seconds", "Time to serve one CNI invocation", ["verb"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
VERBS = ("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION")

@dataclass
class Request:
    verb: str
    result: str = "error"  # until told otherwise: an exception is an error

    def done(self, exit_code: int) -> None:
        self.result = "ok" if exit_code == 0 else "error"


@contextmanager
def cni_request(verb: str) -> Iterator[Request]:
    """Count and time one CNI invocation; call `.done(exit_code)` on the result."""
    request = Request(verb if verb in VERBS else "other")
    start = time.monotonic()
    try:
        yield request
    finally:
        SECONDS.labels(verb=request.verb).observe(time.monotonic() - start)
        REQUESTS.labels(verb=request.verb, result=request.result).inc()


def serve(address: str, port: int) -> None:
    """Serve the default registry on http://address:port/metrics (a daemon thread)."""
    start_http_server(port, address, registry=REGISTRY)
