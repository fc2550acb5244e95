"""What the P4Runtime client counts of its own writes, in prometheus_client's
default registry (the process serving `/metrics` decides where: the node
agent, see agent/metrics.py)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WRITES = Counter("multinet_p4runtime_writes", "P4Runtime Write batches sent, by result", ["result"])
UPDATES = Counter("multinet_p4runtime_updates", "P4Runtime updates sent, by type and table", ["type", "table"])
ERRORS = Counter("multinet_p4runtime_write_errors", "P4Runtime updates the target refused, by canonical code",
                 ["code"])
SECONDS = Histogram("multinet_p4runtime_write_seconds", "Time of one P4Runtime Write batch, as the client saw it",
                    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30))
STREAM_LOST = Counter("multinet_p4runtime_stream_lost", "P4Runtime StreamChannel sessions that ended without the "
                      "client closing them (the target restarted or the connection broke)")
