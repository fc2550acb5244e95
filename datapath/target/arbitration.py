"""Primary election over StreamChannel (P4Runtime v1.4, sections 5.3 and 5.4)."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from finsy.proto import p4r, rpc_code


def election(u: p4r.Uint128) -> int:
    return (u.high << 64) | u.low


@dataclass(frozen=True)
class StreamEnd:
    """Terminate the stream with this status (spec 5.3)."""

    code: grpc.StatusCode
    message: str


Outbox = queue.Queue[p4r.StreamMessageResponse | StreamEnd | None]


@dataclass
class Stream:
    election_id: int | None
    outbox: Outbox
    live: bool = False  # has sent its first arbitration update


class Arbitration:
    """Primary election for the default role.

    A controller becomes primary when its election id is at least the highest
    one ever seen (`past`); when the primary leaves or downgrades, nobody is
    primary until a controller arbitrates again with such an id. Backups are
    never promoted on their own.
    """

    def __init__(self, device_id: int) -> None:
        self.device_id = device_id
        self.streams: dict[int, Stream] = {}
        self.primary_key: int | None = None
        self.past: int | None = None  # highest election id of any primary so far
        self.lock = threading.Lock()
        self._keys = itertools.count(1)

    def primary(self) -> int | None:
        with self.lock:
            s = self.streams.get(self.primary_key) if self.primary_key is not None else None
            return s.election_id if s is not None else None

    def update(self, key: int, stream: Stream, election_id: int | None) -> str | None:
        """Register an arbitration request; returns why the stream must end (INVALID_ARGUMENT), or None."""
        with self.lock:
            if election_id is not None and any(k != key and s.election_id == election_id
                                               for k, s in self.streams.items()):
                return f"election id {election_id} is already used by another controller"
            was_primary = self.primary_key == key
            stream.election_id, stream.live = election_id, True
            self.streams[key] = stream
            if election_id is not None and (self.past is None or election_id >= self.past):
                self.primary_key, self.past = key, election_id
                self._announce(only=None)
            elif was_primary:
                self.primary_key = None  # the primary downgraded itself
                self._announce(only=None)
            else:
                self._announce(only=key)
            return None

    def leave(self, key: int) -> None:
        with self.lock:
            self.streams.pop(key, None)
            if self.primary_key == key:
                self.primary_key = None
                self._announce(only=None)

    def _announce(self, only: int | None) -> None:
        # Spec 5.4: election_id is the highest seen (unset while there never was
        # a primary); OK to the primary, ALREADY_EXISTS to backups, NOT_FOUND
        # to all when there is no primary.
        for k, s in self.streams.items():
            if only is not None and k != only:
                continue
            msg = p4r.StreamMessageResponse()
            arb = msg.arbitration
            arb.device_id = self.device_id
            if self.past is not None:
                arb.election_id.high, arb.election_id.low = self.past >> 64, self.past & ((1 << 64) - 1)
            if k == self.primary_key:
                arb.status.code, arb.status.message = rpc_code.OK, "primary"
            elif self.primary_key is not None:
                arb.status.code, arb.status.message = rpc_code.ALREADY_EXISTS, "backup"
            else:
                arb.status.code, arb.status.message = rpc_code.NOT_FOUND, "backup: there is no primary"
            s.outbox.put(msg)

    # --- one StreamChannel ------------------------------------------------------------

    def channel(self, requests: Iterator[p4r.StreamMessageRequest],
                context: grpc.ServicerContext) -> Iterator[p4r.StreamMessageResponse]:
        """Serve one StreamChannel: requests are read on a thread of their own,
        answers and arbitration notices leave through the stream's outbox."""
        key = next(self._keys)
        stream = Stream(None, Outbox())
        threading.Thread(target=self._read, args=(key, stream, requests),
                         daemon=True, name=f"p4rt-stream-{key}").start()
        while True:
            msg = stream.outbox.get()
            if msg is None:
                return
            if isinstance(msg, StreamEnd):
                context.abort(msg.code, msg.message)
            yield msg

    def _read(self, key: int, stream: Stream, requests: Iterator[p4r.StreamMessageRequest]) -> None:
        try:
            for req in requests:
                if req.WhichOneof("update") != "arbitration":
                    stream.outbox.put(unsupported(req))
                    continue
                end = self._request(key, stream, req.arbitration)
                if end is not None:
                    stream.outbox.put(end)
                    return
        except grpc.RpcError:
            pass  # the client went away; leaving below is the whole answer
        finally:
            self.leave(key)
            stream.outbox.put(None)

    def _request(self, key: int, stream: Stream, arb: p4r.MasterArbitrationUpdate) -> StreamEnd | None:
        """Spec 5.3: which arbitration updates end the stream, and with what."""
        if arb.device_id != self.device_id:
            # Unknown device on a new stream; a changed one on a live stream.
            code = grpc.StatusCode.FAILED_PRECONDITION if stream.live else grpc.StatusCode.NOT_FOUND
            return StreamEnd(code, f"device_id {arb.device_id}: this target is {self.device_id}")
        if arb.HasField("role") and (arb.role.name or arb.role.id):
            if stream.live:
                return StreamEnd(grpc.StatusCode.FAILED_PRECONDITION, "role: a stream keeps the role it started with")
            return StreamEnd(grpc.StatusCode.UNIMPLEMENTED, "role: this target has only the default role")
        elected = election(arb.election_id) if arb.HasField("election_id") else None
        problem = self.update(key, stream, elected)
        return StreamEnd(grpc.StatusCode.INVALID_ARGUMENT, problem) if problem else None


def unsupported(req: p4r.StreamMessageRequest) -> p4r.StreamMessageResponse:
    """Spec "Stream Error Reporting": a stream message the target cannot
    process is answered with a StreamError carrying it back. This pipeline
    has no packet I/O and no digests."""
    msg = p4r.StreamMessageResponse()
    err = msg.error
    err.canonical_code = rpc_code.UNIMPLEMENTED
    kind = req.WhichOneof("update")
    err.message = f"{kind}: this pipeline has no packet I/O or digests"
    if kind == "packet":
        err.packet_out.packet_out.CopyFrom(req.packet)
    elif kind == "digest_ack":
        err.digest_list_ack.digest_list_ack.CopyFrom(req.digest_ack)
    return msg
