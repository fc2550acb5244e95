"""A small synchronous P4Runtime client: arbitration, batched writes, reads,
and reconcile (read the target, write only the difference)."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from finsy.proto import p4i, p4r, p4r_grpc, rpc_code
from grpc_status import rpc_status as grpc_rpc_status

from datapath import gcpause, keepalive
from datapath.client import metrics
from datapath.entries import Entry, decode, encode
from datapath.pipeline import PIPELINE, Pipeline, p4info

log = logging.getLogger(__name__)
INSERT, MODIFY, DELETE = "INSERT", "MODIFY", "DELETE"
K = TypeVar("K")  # an entry key
# gRPC's own reconnect backoff starts at 1 s and grows by 1.6 up to 120 s:
# a channel waiting for a restarting target would find it seconds late. A
# controller wants it back as soon as it answers: 0.1 s doubling to 1 s.
RECONNECT_BACKOFF = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                     ("grpc.max_reconnect_backoff_ms", 1000)]
_TYPES = {INSERT: p4r.Update.INSERT, MODIFY: p4r.Update.MODIFY, DELETE: p4r.Update.DELETE}


@dataclass(frozen=True)
class UpdateError:
    index: int
    code: int  # google.rpc.Code
    message: str

    @property
    def code_name(self) -> str:
        return rpc_code.Code.Name(rpc_code.Code.ValueType(self.code))


# Updates per Write: small enough that encoding the next overlaps the target's
# work on this one, large enough that the per-Write cost stays small.
WRITE_BATCH = 1000


@dataclass(frozen=True)
class _InFlight:
    """A Write sent and not yet answered."""

    start: int  # of its updates in the whole write
    updates: Sequence[tuple[str, Entry]]
    at: float
    call: Any  # grpc.Future and grpc.Call (the stubs name neither)


class WriteError(Exception):
    """A Write batch where some updates failed; the others were applied."""

    def __init__(self, errors: list[UpdateError], total: int,
                 updates: Sequence[tuple[str, Entry]] = ()) -> None:
        super().__init__(f"{len(errors)} of {total} updates failed: "
                         + "; ".join(f"#{e.index} {e.code_name}: {e.message}" for e in errors[:5]))
        self.errors = errors
        self.updates = updates  # the batch the indices refer to, when known

    @property
    def full_tables(self) -> list[str]:
        """The messages of the updates refused because their table is full (RESOURCE_EXHAUSTED)."""
        return [e.message for e in self.errors if e.code == rpc_code.RESOURCE_EXHAUSTED]

    def refused(self, code: int | None = rpc_code.RESOURCE_EXHAUSTED) -> list[Entry]:
        """The entries of the updates refused with `code` (a table full, by default; None: any)."""
        return [self.updates[e.index][1] for e in self.errors
                if code in (None, e.code) and e.index < len(self.updates)]


class ArbitrationError(Exception):
    """The target refused this client's arbitration request (e.g. a duplicate election id)."""


class NotPrimaryError(Exception):
    """This client did not win arbitration (another client holds a higher election id)."""


def _uint128(value: int) -> p4r.Uint128:
    return p4r.Uint128(high=value >> 64, low=value & ((1 << 64) - 1))


class P4RuntimeClient:
    def __init__(self, address: str, device_id: int = 1, election_id: int = 1,
                 pipeline: Pipeline = PIPELINE, credentials: grpc.ChannelCredentials | None = None) -> None:
        self.address, self.device_id, self.election_id = address, device_id, election_id
        self.credentials = credentials  # TLS (datapath/tls.py); plaintext when None
        self.pipeline = pipeline
        self.channel: grpc.Channel | None = None
        self.stub: p4r_grpc.P4RuntimeStub | None = None
        self._outbox: queue.Queue[p4r.StreamMessageRequest | None] = queue.Queue()
        self._arbitration: queue.Queue[p4r.MasterArbitrationUpdate | p4r.StreamError] = queue.Queue()
        self.primary = False
        self.last_arbitration: p4r.MasterArbitrationUpdate | None = None  # the latest notice heard
        self._stream_thread: threading.Thread | None = None
        self.stream_closed = threading.Event()
        # Called (from the stream's thread) when the stream ends without
        # close(): the target went away or the connection broke. They must
        # only mark work; the owner reconnects (datapath/client/sync.py).
        self.stream_listeners: list[Callable[[], None]] = []
        self._session = 0  # which connect() a stream belongs to; close() ends the current one

    # --- session ----------------------------------------------------------------

    def open(self, timeout: float = 10) -> None:
        """Open the channel only: enough for Read, Capabilities and GetForwardingPipelineConfig."""
        if self.channel is not None:
            self.close()
        options = [("grpc.max_receive_message_length", 256 << 20), ("grpc.max_send_message_length", 256 << 20),
                   *RECONNECT_BACKOFF, *keepalive.CLIENT]
        self.channel = (grpc.secure_channel(self.address, self.credentials, options=options) if self.credentials
                        else grpc.insecure_channel(self.address, options=options))
        ready = grpc.channel_ready_future(self.channel)
        try:
            ready.result(timeout=timeout)
        except grpc.FutureTimeoutError:
            # Else the future keeps watching the channel, and its thread dies
            # with a traceback ("Channel closed!") once the next open() closes it.
            ready.cancel()
            raise
        self.stub = p4r_grpc.P4RuntimeStub(self.channel)

    def connect(self, timeout: float = 10) -> bool:
        """Open the stream and arbitrate; returns whether this client is primary."""
        self.open(timeout)
        self._outbox = queue.Queue()
        self.stream_closed.clear()
        responses = self._stub().StreamChannel(self._requests())
        self._stream_thread = threading.Thread(target=self._listen, args=(responses, self._session), daemon=True,
                                               name="p4rt-client-stream")
        self._stream_thread.start()
        update = self._arbitration_round(timeout)
        if isinstance(update, p4r.StreamError):
            self.close()
            raise ArbitrationError(update.message)
        self.primary = update.status.code == rpc_code.OK
        return self.primary

    def arbitrate(self, election_id: int, timeout: float = 10) -> bool:
        """Send a new election id on the open stream; returns whether this client is now primary."""
        while not self._arbitration.empty():  # earlier notices; the answer comes after them
            self._arbitration.get_nowait()
        self.election_id = election_id
        update = self._arbitration_round(timeout)
        if isinstance(update, p4r.StreamError):
            raise ArbitrationError(update.message)
        return bool(update.status.code == rpc_code.OK)

    def _arbitration_round(self, timeout: float) -> Any:
        """Send this client's election id; the target's answer (an update or a StreamError)."""
        msg = p4r.StreamMessageRequest()
        msg.arbitration.device_id = self.device_id
        msg.arbitration.election_id.CopyFrom(_uint128(self.election_id))
        self._outbox.put(msg)
        try:
            return self._arbitration.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no arbitration answer from {self.address}") from None

    def claim(self) -> bool:
        """Become primary when nobody is: the target keeps the highest election id
        it has seen and promotes no backup by itself (spec 5.3), so arbitrate
        again above it. Returns whether this client is primary."""
        last = self.last_arbitration
        if self.primary or last is None or last.status.code != rpc_code.NOT_FOUND:
            return self.primary
        seen = (last.election_id.high << 64) | last.election_id.low
        return self.arbitrate(max(self.election_id, seen + 1))

    def _requests(self) -> Iterator[p4r.StreamMessageRequest]:
        while True:
            msg = self._outbox.get()
            if msg is None:
                return
            yield msg

    def _listen(self, responses: Iterator[p4r.StreamMessageResponse], session: int) -> None:
        try:
            for msg in responses:
                if msg.WhichOneof("update") == "arbitration":
                    self.primary = msg.arbitration.status.code == rpc_code.OK
                    self.last_arbitration = msg.arbitration
                    self._arbitration.put(msg.arbitration)
                elif msg.WhichOneof("update") == "error":
                    log.warning("target stream error: %s", msg.error.message)
                    self._arbitration.put(msg.error)
        except grpc.RpcError as err:
            log.info("P4Runtime stream to %s closed: %s", self.address, err.code())
            # The target ends the stream to refuse an arbitration (spec 5.3:
            # duplicate election id, unknown device); connect() reports it.
            self._arbitration.put(p4r.StreamError(canonical_code=err.code().value[0],
                                                  message=f"{err.code().name}: {err.details()}"))
        finally:
            self.primary = False
            self.stream_closed.set()
            if session == self._session:  # not ended by close(): lost
                metrics.STREAM_LOST.inc()
                for listener in self.stream_listeners:
                    listener()

    def close(self) -> None:
        self._session += 1
        self._outbox.put(None)
        if self.channel is not None:
            self.channel.close()
        if self._stream_thread is not None:
            self._stream_thread.join(timeout=5)
        self.channel = self.stub = self._stream_thread = None
        self._arbitration = queue.Queue()

    def _stub(self) -> p4r_grpc.P4RuntimeStub:
        if self.stub is None:
            raise RuntimeError("connect() first")
        return self.stub

    # --- pipeline ---------------------------------------------------------------

    def set_pipeline(self, reconcile: bool = True) -> None:
        """Push the pipeline; RECONCILE_AND_COMMIT keeps the target's entries when it already runs it.

        With `reconcile`, a target that already runs the multinet pipeline
        with table sizes of its own (a device loads its pipeline at boot, as
        infrap4d does) is used as it is: its sizes are the device's, not ours."""
        if reconcile and self.primary:  # a backup's request is refused by the target, as it should be
            running = self.get_pipeline()
            if running.HasField("p4info") and _sized_alike(running.p4info, p4info(self.pipeline)):
                return
        A = p4r.SetForwardingPipelineConfigRequest
        req = A(device_id=self.device_id, election_id=_uint128(self.election_id),
                action=A.RECONCILE_AND_COMMIT if reconcile else A.VERIFY_AND_COMMIT)
        req.config.p4info.CopyFrom(p4info(self.pipeline))
        self._stub().SetForwardingPipelineConfig(req)

    def get_pipeline(self) -> p4r.ForwardingPipelineConfig:
        req = p4r.GetForwardingPipelineConfigRequest(device_id=self.device_id)
        return self._stub().GetForwardingPipelineConfig(req).config

    def capabilities(self) -> str:
        return str(self._stub().Capabilities(p4r.CapabilitiesRequest()).p4runtime_api_version)

    # --- entries ----------------------------------------------------------------

    def write(self, updates: Sequence[tuple[str, Entry]], batch: int = WRITE_BATCH) -> None:
        """Write updates in batches, in order; raises WriteError listing failed updates (others applied).

        One batch is in flight while the next is encoded, so the target realizes
        batch k while this process encodes batch k+1 (on a separate core, as on an
        IPU). A batch is sent only once the one before it is answered: the target
        sees them in order, as one Write each."""
        failures: list[UpdateError] = []
        in_flight: _InFlight | None = None
        try:
            for start in range(0, len(updates), batch):
                with gcpause.paused():  # encoding a large batch: as the target's decoding (datapath.gcpause)
                    request = self._request(updates[start : start + batch])
                if in_flight is not None:
                    failures += self._answer(in_flight)
                in_flight = _InFlight(start, updates[start : start + batch], time.monotonic(),
                                      self._stub().Write.future(request))
            if in_flight is not None:
                done, in_flight = in_flight, None
                failures += self._answer(done)
        finally:
            if in_flight is not None:  # encoding or an earlier answer failed: this one still lands
                try:
                    in_flight.call.result()
                except grpc.RpcError:
                    pass  # the first failure is the one raised
        if failures:
            raise WriteError(failures, len(updates), updates)

    def _request(self, updates: Sequence[tuple[str, Entry]]) -> p4r.WriteRequest:
        req = p4r.WriteRequest(device_id=self.device_id, election_id=_uint128(self.election_id))
        for op, e in updates:
            u = req.updates.add(type=_TYPES[op])
            encode(e, self.pipeline, with_action=op != DELETE, into=u.entity.table_entry)  # DELETE: the key alone
        return req

    def _answer(self, sent: _InFlight) -> list[UpdateError]:
        """Wait for one Write's answer: its failed updates, indexed in the whole write."""
        try:
            sent.call.result()
        except grpc.RpcError as err:
            failure = _write_error(err, len(sent.updates))
            metrics.WRITES.labels(result="error").inc()
            for refused in failure.errors if isinstance(failure, WriteError) else ():
                metrics.ERRORS.labels(code=refused.code_name).inc()
            if not isinstance(failure, WriteError):
                raise failure from err
            return [UpdateError(e.index + sent.start, e.code, e.message) for e in failure.errors]
        finally:
            metrics.SECONDS.observe(time.monotonic() - sent.at)
        metrics.WRITES.labels(result="ok").inc()
        for op, e in sent.updates:
            metrics.UPDATES.labels(type=op, table=e.table).inc()
        return []

    def read(self, table: str | None = None, counters: bool = False) -> list[Entry]:
        """All entries of one table, or of every table (wildcard read)."""
        return [e for e, _ in self.read_with_counters(table, counters)]

    def read_with_counters(self, table: str | None = None, counters: bool = True) -> list[tuple[Entry, tuple[int, int]]]:
        req = p4r.ReadRequest(device_id=self.device_id)
        te = req.entities.add().table_entry
        te.table_id = self.pipeline.table(table).id if table else 0
        if counters:
            te.counter_data.SetInParent()
        out = []
        for response in self._stub().Read(req):
            for entity in response.entities:
                t = entity.table_entry
                out.append((decode(t, self.pipeline), (t.counter_data.packet_count, t.counter_data.byte_count)))
        return out

    def read_counters(self, table: str | None = None) -> list[tuple[Entry, tuple[int, int]]]:
        """The direct counters of one counted table (or all): DirectCounterEntry
        reads, whose entries carry only their keys, so nothing of the actions
        (a Service's backends) is encoded, sent or decoded."""
        req = p4r.ReadRequest(device_id=self.device_id)
        req.entities.add().direct_counter_entry.table_entry.table_id = self.pipeline.table(table).id if table else 0
        out = []
        for response in self._stub().Read(req):
            for entity in response.entities:
                dc = entity.direct_counter_entry
                out.append((decode(dc.table_entry, self.pipeline, with_action=False),
                            (dc.data.packet_count, dc.data.byte_count)))
        return out

    def reconcile(self, desired: Iterable[Entry], tables: Iterable[str] | None = None) -> int:
        """Make the target's tables (all, or `tables`) equal `desired`; returns updates written."""
        names = set(tables) if tables is not None else {t.name for t in self.pipeline.tables}
        want = {e.key: e for e in desired if e.table in names}
        have = {e.key: e for e in self.read() if e.table in names}
        updates = diff(have, want)
        if updates:
            self.write(updates)
        return len(updates)


def diff(have: Mapping[K, Entry], want: Mapping[K, Entry]) -> list[tuple[str, Entry]]:
    """Updates turning `have` into `want`: deletes first (they free table space)."""
    deletes = [(DELETE, e) for k, e in have.items() if k not in want]
    modifies = [(MODIFY, e) for k, e in want.items() if k in have and have[k] != e]
    inserts = [(INSERT, e) for k, e in want.items() if k not in have]
    return list(itertools.chain(deletes, modifies, inserts))


def _write_error(err: grpc.RpcError, total: int) -> Exception:
    if err.code() == grpc.StatusCode.PERMISSION_DENIED:
        return NotPrimaryError(err.details())
    # The per-update p4.Errors travel in a google.rpc.Status (spec 12.3);
    # grpcio-status reads it (and refuses one that contradicts the call's status).
    status = grpc_rpc_status.from_call(err) if isinstance(err, grpc.Call) else None
    if status is None:
        return err
    errors = []
    for i, detail in enumerate(status.details):
        e = p4r.Error()
        detail.Unpack(e)
        if e.canonical_code != rpc_code.OK:
            errors.append(UpdateError(i, e.canonical_code, e.message))
    return WriteError(errors, total)


def wait_for(address: str, timeout: float = 30) -> None:
    """Wait until a target listens at `address`."""
    deadline = time.monotonic() + timeout
    while True:
        with grpc.insecure_channel(address) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=1)
                return
            except grpc.FutureTimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no P4Runtime target at {address}") from None


def _sized_alike(running: p4i.P4Info, ours: p4i.P4Info) -> bool:
    """The same pipeline but for table and action profile sizes."""
    def shape(info: p4i.P4Info) -> p4i.P4Info:
        copy = p4i.P4Info()
        copy.CopyFrom(info)
        for table in copy.tables:
            table.size = 0
        for profile in copy.action_profiles:
            profile.size = 0
        return copy
    return shape(running) == shape(ours)
