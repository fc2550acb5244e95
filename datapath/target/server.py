"""The IPU target's P4Runtime service (gRPC adapter over Store and Kernel).

Follows the P4Runtime specification (v1.4): master arbitration over
StreamChannel by election id, Write with per-update error details
(CONTINUE_ON_ERROR), wildcard Read, pipeline config, Capabilities.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc
from finsy.proto import p4r, p4r_grpc, rpc_code, rpc_status

from datapath.entries import Entry, P4Error, decode, encode
from datapath.pipeline import NO_ACTION, PIPELINE, Pipeline, Table, p4info
from datapath.target import kernel as kmod
from datapath.target.kernel import Kernel
from datapath.target.store import Change, ReadFilter, Store, matches_filter

log = logging.getLogger(__name__)
API_VERSION = "1.4.0"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
_OPS = {p4r.Update.INSERT: "INSERT", p4r.Update.MODIFY: "MODIFY", p4r.Update.DELETE: "DELETE"}


def _election(u: p4r.Uint128) -> int:
    return (u.high << 64) | u.low


@dataclass
class _Stream:
    election_id: int | None
    outbox: "queue.Queue[p4r.StreamMessageResponse | _End | None]"
    live: bool = False  # has sent its first arbitration update


@dataclass(frozen=True)
class _End:
    """Terminate the stream with this status (spec 5.3)."""

    code: grpc.StatusCode
    message: str


class Arbitration:
    """Primary election for the default role (P4Runtime 5.3, 5.4).

    A controller becomes primary when its election id is at least the highest
    one ever seen (`past`); when the primary leaves or downgrades, nobody is
    primary until a controller arbitrates again with such an id. Backups are
    never promoted on their own.
    """

    def __init__(self, device_id: int) -> None:
        self.device_id = device_id
        self.streams: dict[int, _Stream] = {}
        self.primary_key: int | None = None
        self.past: int | None = None  # highest election id of any primary so far
        self.lock = threading.Lock()

    def primary(self) -> int | None:
        with self.lock:
            s = self.streams.get(self.primary_key) if self.primary_key is not None else None
            return s.election_id if s is not None else None

    def update(self, key: int, stream: _Stream, election_id: int | None) -> str | None:
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


class IpuServicer(p4r_grpc.P4RuntimeServicer):  # type: ignore[misc]
    def __init__(self, kernel: Kernel, device_id: int = 1, pipeline: Pipeline = PIPELINE) -> None:
        self.kernel = kernel
        self.device_id = device_id
        self.pipeline = pipeline
        self.p4info = p4info(pipeline)
        self.store = Store(pipeline)
        self.config: p4r.ForwardingPipelineConfig | None = None
        self.saved: p4r.ForwardingPipelineConfig | None = None  # by VERIFY_AND_SAVE, awaiting COMMIT
        self.arbitration = Arbitration(device_id)
        self.lock = threading.Lock()  # one Write / config change at a time
        self._next_stream = 0

    # --- checks ---------------------------------------------------------------

    def _check_device(self, device_id: int, context: grpc.ServicerContext, role: str = "") -> None:
        if device_id != self.device_id:
            context.abort(grpc.StatusCode.NOT_FOUND, f"device_id {device_id}: this target is {self.device_id}")
        if role:  # only the default role exists (its name is empty)
            context.abort(grpc.StatusCode.NOT_FOUND, f"role {role!r}: this target has only the default role")

    def _check_primary(self, election: p4r.Uint128, context: grpc.ServicerContext) -> None:
        primary = self.arbitration.primary()
        if primary is None or _election(election) != primary:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"election_id {_election(election)} is not the primary's ({primary})")

    # --- RPCs -------------------------------------------------------------------

    def Capabilities(self, request: p4r.CapabilitiesRequest, context: grpc.ServicerContext) -> p4r.CapabilitiesResponse:
        return p4r.CapabilitiesResponse(p4runtime_api_version=API_VERSION)

    def SetForwardingPipelineConfig(self, request: p4r.SetForwardingPipelineConfigRequest,
                                    context: grpc.ServicerContext) -> p4r.SetForwardingPipelineConfigResponse:
        self._check_device(request.device_id, context, request.role)
        self._check_primary(request.election_id, context)
        A = p4r.SetForwardingPipelineConfigRequest
        if request.action not in (A.VERIFY, A.VERIFY_AND_SAVE, A.VERIFY_AND_COMMIT, A.COMMIT,
                                  A.RECONCILE_AND_COMMIT):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"action {request.action} not supported")
        if request.action == A.COMMIT:
            # COMMIT realizes the config saved by VERIFY_AND_SAVE and carries none itself.
            if request.HasField("config"):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "COMMIT: config must not be given")
            if self.saved is None:
                context.abort(grpc.StatusCode.NOT_FOUND, "COMMIT: no config saved by VERIFY_AND_SAVE")
            config = self.saved
        else:
            if request.config.p4info != self.p4info:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "config.p4info: this target realizes only the multinet pipeline with its table sizes")
            config = p4r.ForwardingPipelineConfig()
            config.CopyFrom(request.config)
        if request.action == A.VERIFY:
            return p4r.SetForwardingPipelineConfigResponse()
        with self.lock:
            if request.action == A.VERIFY_AND_SAVE:
                # Later reads and writes refer to the saved config; this target
                # realizes only one pipeline, so the tables it runs already are
                # that config's (empty when none ran), and COMMIT keeps the
                # writes made since, as replaying them would.
                self.saved = config
                if self.config is None:
                    self.config = config
                return p4r.SetForwardingPipelineConfigResponse()
            keep = (request.action in (A.RECONCILE_AND_COMMIT, A.COMMIT)) and self.config is not None
            if not keep:
                # A new pipeline starts with empty tables (spec 7.4).
                self.store.clear()
                self.kernel.reset()
            self.config, self.saved = config, None
        return p4r.SetForwardingPipelineConfigResponse()

    def GetForwardingPipelineConfig(self, request: p4r.GetForwardingPipelineConfigRequest,
                                    context: grpc.ServicerContext) -> p4r.GetForwardingPipelineConfigResponse:
        self._check_device(request.device_id, context)
        response = p4r.GetForwardingPipelineConfigResponse()
        if self.config is None:
            return response  # no config known: `config` is left unset (spec, GetForwardingPipelineConfig RPC)
        R = p4r.GetForwardingPipelineConfigRequest
        # Each response type names the parts returned; the cookie always is (spec 7.3).
        if request.response_type in (R.ALL, R.P4INFO_AND_COOKIE):
            response.config.p4info.CopyFrom(self.config.p4info)
        if request.response_type in (R.ALL, R.DEVICE_CONFIG_AND_COOKIE):
            response.config.p4_device_config = self.config.p4_device_config
        if self.config.HasField("cookie"):
            response.config.cookie.CopyFrom(self.config.cookie)
        return response

    def Write(self, request: p4r.WriteRequest, context: grpc.ServicerContext) -> p4r.WriteResponse:
        self._check_device(request.device_id, context, request.role)
        self._check_primary(request.election_id, context)
        if self.config is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no forwarding pipeline config set")
        if request.atomicity != p4r.WriteRequest.CONTINUE_ON_ERROR:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "only CONTINUE_ON_ERROR atomicity is supported")
        with self.lock:
            errors = self._write(list(request.updates))
        if any(err is not None for err in errors):
            self._fail_batch(errors, context)
        return p4r.WriteResponse()

    def _write(self, updates: list[p4r.Update]) -> list[P4Error | None]:
        errors: list[P4Error | None] = [None] * len(updates)
        accepted: list[tuple[int, Change]] = []
        for i, update in enumerate(updates):
            try:
                change = self._accept(update)
            except P4Error as err:
                errors[i] = err
                continue
            accepted.append((i, change))
        try:
            self.kernel.flush(self.store)
        except P4Error as err:
            log.error("write batch failed in the kernel, rebuilding: %s", err.message)
            for i, change in reversed(accepted):
                self.store.revert(change)
                errors[i] = err
            self.kernel.rebuild(self.store)
        return errors

    def _accept(self, update: p4r.Update) -> Change:
        op = _OPS.get(update.type)
        if op is None:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"update type {update.type} unspecified")
        kind = update.entity.WhichOneof("entity")
        if kind == "direct_counter_entry":
            return self._accept_direct_counter(op, update.entity.direct_counter_entry)
        if kind != "table_entry":
            raise P4Error(rpc_code.UNIMPLEMENTED, f"{kind}: only table entries and direct counters are writable")
        te = update.entity.table_entry
        if te.is_const:
            raise P4Error(rpc_code.INVALID_ARGUMENT, "is_const must be false in a write (spec 9.1)")
        if te.is_default_action:
            _check_default_write(op, te)
        # Spec 9.1.2: INSERT needs an action; a MODIFY without one leaves the
        # entry as it is; DELETE considers only the key.
        keep = op == "MODIFY" and not te.HasField("action")
        e = decode(te, self.pipeline, with_action=op == "INSERT" or (op == "MODIFY" and not keep))
        if op != "DELETE" and ((te.HasField("counter_data") and not self.pipeline.table(e.table).counters)
                               or te.HasField("meter_config") or te.HasField("meter_counter_data")):
            # A direct resource the table does not have (p4runtime.proto, TableEntry).
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{e.table}: no such direct resource in this table")
        if op != "DELETE" and (te.counter_data.packet_count or te.counter_data.byte_count):
            # Spec "Direct Resources": counter_data would set the counter; kernel counters
            # start at 0 and cannot be set, so only zero (or unset) is honoured.
            raise P4Error(rpc_code.UNIMPLEMENTED, f"{e.table}: counter values cannot be written on this target")
        if (te.idle_timeout_ns or te.HasField("time_since_last_hit")) and op != "DELETE":
            # No table declares idle timeout support (P4Info idle_timeout_behavior NO_TIMEOUT).
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{e.table}: idle_timeout_ns is not supported by this table")
        if e.table == "policy_rule" and op != "DELETE":
            kmod.check_rule(e)
        change = self.store.check(op, e)
        if keep:
            return Change(change.old, change.old)
        self.kernel.prepare(change)
        self.store.commit(change)
        return change

    def _accept_direct_counter(self, op: str, dc: p4r.DirectCounterEntry) -> Change:
        """Spec "DirectCounterEntry": only MODIFY, of an existing entry's counter."""
        if op != "MODIFY":
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{op} of a direct counter: only MODIFY applies")
        table = self.pipeline.table_by_id(dc.table_entry.table_id)
        if table is None:
            raise P4Error(rpc_code.NOT_FOUND, f"unknown table id {dc.table_entry.table_id}")
        if not table.counters:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"table {table.name} has no direct counter")
        change = self.store.check("MODIFY", decode(dc.table_entry, self.pipeline, with_action=False))
        if dc.HasField("data"):
            # The counters are the kernel's (nft counters): they count, they cannot be set.
            raise P4Error(rpc_code.UNIMPLEMENTED, f"{table.name}: counter values cannot be written on this target")
        return Change(change.old, change.old)

    def _fail_batch(self, errors: list[P4Error | None], context: grpc.ServicerContext,
                    what: str = "updates") -> None:
        # Spec 12.3 (and 11 for reads): status UNKNOWN, one p4.v1.Error per
        # update or read request in the details, OK for those that succeeded.
        # The details' code and message are the status's own (spec 12; grpcio-status refuses others).
        failed = sum(err is not None for err in errors)
        message = f"{failed} of {len(errors)} {what} failed"
        status = rpc_status.Status(code=rpc_code.UNKNOWN, message=message)
        for err in errors:
            detail = p4r.Error(canonical_code=rpc_code.OK)
            if err is not None:
                detail = p4r.Error(canonical_code=err.code, message=err.message)
            status.details.add().Pack(detail)
        context.set_trailing_metadata(((STATUS_DETAILS_KEY, status.SerializeToString()),))
        context.set_code(grpc.StatusCode.UNKNOWN)
        context.set_details(message)

    def Read(self, request: p4r.ReadRequest, context: grpc.ServicerContext) -> Iterator[p4r.ReadResponse]:
        self._check_device(request.device_id, context)
        if self.config is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no forwarding pipeline config set")
        # Spec 11 (Read, batch processing): each request is answered or gets
        # its own p4.Error; any error makes the status UNKNOWN with one
        # p4.Error per request, as Write does.
        errors: list[P4Error | None] = []
        response = p4r.ReadResponse()
        for wanted in request.entities:
            try:
                found = list(self._read_entity(wanted))
            except P4Error as err:
                errors.append(err)
                continue
            errors.append(None)
            for entity in found:
                response.entities.append(entity)
                if len(response.entities) >= 1000:
                    yield response
                    response = p4r.ReadResponse()
        if response.entities:
            yield response
        if any(err is not None for err in errors):
            self._fail_batch(errors, context, "reads")

    def _read_entity(self, wanted: p4r.Entity) -> Iterator[p4r.Entity]:
        kind = wanted.WhichOneof("entity")
        if kind is None:
            raise P4Error(rpc_code.INVALID_ARGUMENT, "entity: one kind must be set")
        if kind == "table_entry":
            return (p4r.Entity(table_entry=te) for te in self._read_table(wanted.table_entry))
        if kind == "direct_counter_entry":
            return self._read_direct_counters(wanted.direct_counter_entry)
        raise P4Error(rpc_code.UNIMPLEMENTED, f"{kind}: only table entries and direct counters can be read")

    def _read_default(self, wanted: p4r.TableEntry) -> Iterator[p4r.TableEntry]:
        """The default entry of one table, or of every table (table_id 0); never
        part of other reads (spec, "Wildcard Reads": is_default_action)."""
        if wanted.match:
            raise P4Error(rpc_code.INVALID_ARGUMENT, "a default entry read has no match fields")
        tables = self.pipeline.tables
        if wanted.table_id:
            table = self.pipeline.table_by_id(wanted.table_id)
            if table is None:
                raise P4Error(rpc_code.NOT_FOUND, f"unknown table id {wanted.table_id}")
            tables = (table,)
        for t in tables:
            out = p4r.TableEntry(table_id=t.id, is_default_action=True, is_const=True)
            out.action.action.action_id = self.pipeline.action(NO_ACTION).id
            yield out

    def _read_direct_counters(self, wanted: p4r.DirectCounterEntry) -> Iterator[p4r.Entity]:
        """DirectCounterEntry reads: every counted table (table_id 0), one table, or one entry."""
        te = wanted.table_entry
        table = self.pipeline.table_by_id(te.table_id) if te.table_id else None
        if te.table_id and table is None:
            raise P4Error(rpc_code.NOT_FOUND, f"unknown table id {te.table_id}")
        if table is not None and not table.counters:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"table {table.name} has no direct counter")
        query = p4r.TableEntry()
        query.CopyFrom(te)
        query.ClearField("action")
        query.counter_data.SetInParent()
        found = list(self._read_table(query))
        if te.match and not found:
            raise P4Error(rpc_code.NOT_FOUND, f"{table.name if table else te.table_id}: no such entry")
        for out in found:
            if not self.pipeline.table_by_id(out.table_id).counters:  # type: ignore[union-attr]
                continue
            entity = p4r.Entity()
            entity.direct_counter_entry.data.CopyFrom(out.counter_data)
            out.ClearField("counter_data")
            out.ClearField("action")
            entity.direct_counter_entry.table_entry.CopyFrom(out)
            yield entity

    def _read_table(self, wanted: p4r.TableEntry) -> Iterator[p4r.TableEntry]:
        if wanted.is_default_action:
            yield from self._read_default(wanted)
            return
        with self.lock:
            if wanted.table_id == 0:
                entries = list(self.store.entries())
            else:
                table = self.pipeline.table_by_id(wanted.table_id)
                if table is None:
                    raise P4Error(rpc_code.NOT_FOUND, f"unknown table id {wanted.table_id}")
                filt = _read_filter(wanted, table, self.pipeline)
                entries = [e for e in self.store.entries(table.name) if matches_filter(e, filt)]
            counted = {e.table for e in entries if self.pipeline.table(e.table).counters}
            counters = self.kernel.counters(counted) if wanted.HasField("counter_data") and counted else {}
        for e in entries:
            out = encode(e, self.pipeline)
            if wanted.HasField("counter_data") and self.pipeline.table(e.table).counters:
                packets, octets = counters.get(kmod.counter_key(e), (0, 0))
                out.counter_data.packet_count, out.counter_data.byte_count = packets, octets
            yield out

    def StreamChannel(self, request_iterator: Iterator[p4r.StreamMessageRequest],
                      context: grpc.ServicerContext) -> Iterator[p4r.StreamMessageResponse]:
        outbox: queue.Queue[p4r.StreamMessageResponse | _End | None] = queue.Queue()
        with self.lock:
            self._next_stream += 1
            key = self._next_stream
        stream = _Stream(None, outbox)
        threading.Thread(target=self._read_stream, args=(key, stream, request_iterator),
                         daemon=True, name=f"p4rt-stream-{key}").start()
        while True:
            msg = outbox.get()
            if msg is None:
                return
            if isinstance(msg, _End):
                context.abort(msg.code, msg.message)
            yield msg

    def _read_stream(self, key: int, stream: _Stream, requests: Iterator[p4r.StreamMessageRequest]) -> None:
        try:
            for req in requests:
                if req.WhichOneof("update") != "arbitration":
                    stream.outbox.put(_unsupported(req))
                    continue
                end = self._arbitrate(key, stream, req.arbitration)
                if end is not None:
                    stream.outbox.put(end)
                    return
        except grpc.RpcError:
            pass  # the client went away; leaving below is the whole answer
        finally:
            self.arbitration.leave(key)
            stream.outbox.put(None)

    def _arbitrate(self, key: int, stream: _Stream, arb: p4r.MasterArbitrationUpdate) -> _End | None:
        """Spec 5.3: which arbitration updates end the stream, and with what."""
        if arb.device_id != self.device_id:
            # Unknown device on a new stream; a changed one on a live stream.
            code = grpc.StatusCode.FAILED_PRECONDITION if stream.live else grpc.StatusCode.NOT_FOUND
            return _End(code, f"device_id {arb.device_id}: this target is {self.device_id}")
        if arb.HasField("role") and (arb.role.name or arb.role.id):
            if stream.live:
                return _End(grpc.StatusCode.FAILED_PRECONDITION, "role: a stream keeps the role it started with")
            return _End(grpc.StatusCode.UNIMPLEMENTED, "role: this target has only the default role")
        election = _election(arb.election_id) if arb.HasField("election_id") else None
        problem = self.arbitration.update(key, stream, election)
        return _End(grpc.StatusCode.INVALID_ARGUMENT, problem) if problem else None


def _unsupported(req: p4r.StreamMessageRequest) -> p4r.StreamMessageResponse:
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


def _read_filter(wanted: p4r.TableEntry, table: Table, p: Pipeline) -> ReadFilter:
    """Spec 9.1.x "Wildcard Reads": a given match is a whole key (at most one
    entry); priority, action id and metadata filter when not at their defaults."""
    key = None
    if wanted.match:
        e = decode(wanted, p, with_action=False, filter=True)
        missing = [f.name for f in table.fields if f.match == "exact" and e.get(f.name) is None]
        if missing:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{table.name}: read match is not a whole key (no {missing})")
        key = e.match
    action = None
    if wanted.action.WhichOneof("type") == "action" and wanted.action.action.action_id:
        a = p.action_by_id(wanted.action.action.action_id)
        if a is None or a.name not in table.actions:
            raise P4Error(rpc_code.INVALID_ARGUMENT, f"{table.name}: action id {wanted.action.action.action_id} "
                                                     "is not one of the table's")
        action = a.name
    return ReadFilter(key, wanted.priority, action, wanted.metadata)


def _check_default_write(op: str, te: p4r.TableEntry) -> None:
    """Writes of a default entry (spec 9.1): only MODIFY, no match; every
    table's default action is const here."""
    if op != "MODIFY":
        raise P4Error(rpc_code.INVALID_ARGUMENT, f"{op} of a default entry: only MODIFY applies to it")
    if te.match or te.priority:
        raise P4Error(rpc_code.INVALID_ARGUMENT, "a default entry has no match fields and no priority")
    raise P4Error(rpc_code.PERMISSION_DENIED, "the table's default action is const (NoAction)")


def serve(kernel: Kernel, address: str, device_id: int = 1, pipeline: Pipeline = PIPELINE) -> tuple[grpc.Server, IpuServicer]:
    """Start the P4Runtime server; the caller waits on and stops it."""
    kernel.reset()
    servicer = IpuServicer(kernel, device_id, pipeline)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_receive_message_length", 256 << 20),
                                  ("grpc.max_send_message_length", 256 << 20),
                                  # One target per port: without this a second
                                  # target (or anything) on the port shares it.
                                  ("grpc.so_reuseport", 0)])
    p4r_grpc.add_P4RuntimeServicer_to_server(servicer, server)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"--port: cannot listen on {address}")
    server.start()
    log.info("P4Runtime target for device %d listening on %s", device_id, address)
    return server, servicer
