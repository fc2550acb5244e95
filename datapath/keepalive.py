"""HTTP/2 keepalive of the P4Runtime channel, both ends.

A peer that stops answering without closing its connection (a hung process, a
node cut off) is otherwise never noticed: TCP stays up, so the agent would wait
on a dead target forever, and the target would keep a dead primary's mastership
and refuse every other client. Each end pings the other on an idle connection
and drops it when a ping goes unanswered, so the stream ends and arbitration
moves on (P4Runtime spec 5.3: the primary's stream closing).
"""

from __future__ import annotations

PING_EVERY_MS = 10_000  # an idle connection is pinged this often
ANSWER_WITHIN_MS = 10_000  # and dropped when a ping goes unanswered this long

_BOTH = [("grpc.keepalive_time_ms", PING_EVERY_MS), ("grpc.keepalive_timeout_ms", ANSWER_WITHIN_MS),
         ("grpc.keepalive_permit_without_calls", 1),
         ("grpc.http2.max_pings_without_data", 0),  # else an end stops pinging after two
         ("grpc.http2.min_time_between_pings_ms", PING_EVERY_MS),  # else one ping per 5 minutes at most
         ("grpc.http2.ping_timeout_ms", ANSWER_WITHIN_MS)]  # gRPC core's own ping deadline (60 s) else wins

CLIENT = _BOTH
# A client pinging this often is welcome: gRPC's default answers pings more
# often than every 5 minutes with GOAWAY (too_many_pings).
SERVER = [*_BOTH, ("grpc.http2.min_ping_interval_without_data_ms", PING_EVERY_MS // 2)]
