"""The IPU target's P4Runtime service: the gRPC adapter over the store and a dataplane.

Follows the P4Runtime specification (v1.4): primary arbitration over
StreamChannel by election id (arbitration.py), Write with per-update error
details (CONTINUE_ON_ERROR, writes.py), wildcard Read (reads.py), pipeline
config, Capabilities. Errors of a batch carry a google.rpc.Status whose
message is the call's details, as grpcio-status requires to read it back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING
from concurrent import futures

import grpc
from finsy.proto import p4r, p4r_grpc, rpc_code, rpc_status
from grpc_status import rpc_status as grpc_rpc_status

from datapath import keepalive
from datapath.entries import P4Error
from datapath.pipeline import PIPELINE, Pipeline, p4info
from datapath.target.arbitration import Arbitration, election
from datapath.target.reads import Reader
from datapath.target.realizer import Dataplane
from datapath.target.store import Store
from datapath.target.writes import OPS, Writer

if TYPE_CHECKING:
    from datapath.target.metrics import P4RuntimeMetrics

log = logging.getLogger(__name__)
API_VERSION = "1.4.0"
_Config = p4r.SetForwardingPipelineConfigRequest


class IpuServicer(p4r_grpc.P4RuntimeServicer):
    def __init__(self, dataplane: Dataplane, device_id: int = 1, pipeline: Pipeline = PIPELINE,
                 metrics: P4RuntimeMetrics | None = None) -> None:
        self.dataplane = dataplane
        self.metrics = metrics
        self.device_id = device_id
        self.pipeline = pipeline
        self.p4info = p4info(pipeline)
        self.store = Store(pipeline)
        self.config: p4r.ForwardingPipelineConfig | None = None
        self.saved: p4r.ForwardingPipelineConfig | None = None  # by VERIFY_AND_SAVE, awaiting COMMIT
        self.arbitration = Arbitration(device_id)
        self.lock = threading.Lock()  # one Write / config change at a time
        self.writer = Writer(pipeline, self.store, dataplane)
        self.reader = Reader(pipeline, self.store, dataplane, self.lock)

    # --- checks ---------------------------------------------------------------

    def _check_device(self, device_id: int, context: grpc.ServicerContext, role: str = "") -> None:
        if device_id != self.device_id:
            context.abort(grpc.StatusCode.NOT_FOUND, f"device_id {device_id}: this target is {self.device_id}")
        if role:  # only the default role exists (its name is empty)
            context.abort(grpc.StatusCode.NOT_FOUND, f"role {role!r}: this target has only the default role")

    def _check_primary(self, election_id: p4r.Uint128, context: grpc.ServicerContext) -> None:
        primary = self.arbitration.primary()
        if primary is None or election(election_id) != primary:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"election_id {election(election_id)} is not the primary's ({primary})")

    def _check_config(self, context: grpc.ServicerContext) -> None:
        if self.config is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no forwarding pipeline config set")

    # --- RPCs -------------------------------------------------------------------

    def Capabilities(self, request: p4r.CapabilitiesRequest, context: grpc.ServicerContext) -> p4r.CapabilitiesResponse:
        return p4r.CapabilitiesResponse(p4runtime_api_version=API_VERSION)

    def SetForwardingPipelineConfig(self, request: p4r.SetForwardingPipelineConfigRequest,
                                    context: grpc.ServicerContext) -> p4r.SetForwardingPipelineConfigResponse:
        self._check_device(request.device_id, context, request.role)
        self._check_primary(request.election_id, context)
        if request.action not in (_Config.VERIFY, _Config.VERIFY_AND_SAVE, _Config.VERIFY_AND_COMMIT,
                                  _Config.COMMIT, _Config.RECONCILE_AND_COMMIT):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"action {request.action} not supported")
        config = self._requested_config(request, context)
        if request.action != _Config.VERIFY:
            with self.lock:
                self._realize_config(request.action, config)
        return p4r.SetForwardingPipelineConfigResponse()

    def _requested_config(self, request: p4r.SetForwardingPipelineConfigRequest,
                          context: grpc.ServicerContext) -> p4r.ForwardingPipelineConfig:
        if request.action == _Config.COMMIT:
            # COMMIT realizes the config saved by VERIFY_AND_SAVE and carries none itself.
            if request.HasField("config"):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "COMMIT: config must not be given")
            if self.saved is None:
                context.abort(grpc.StatusCode.NOT_FOUND, "COMMIT: no config saved by VERIFY_AND_SAVE")
            assert self.saved is not None
            return self.saved
        if request.config.p4info != self.p4info:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "config.p4info: this target realizes only the multinet pipeline with its table sizes")
        config = p4r.ForwardingPipelineConfig()
        config.CopyFrom(request.config)
        return config

    def _realize_config(self, action: int, config: p4r.ForwardingPipelineConfig) -> None:
        if action == _Config.VERIFY_AND_SAVE:
            # Later reads and writes refer to the saved config; this target
            # realizes only one pipeline, so the tables it runs already are
            # that config's (empty when none ran), and COMMIT keeps the
            # writes made since, as replaying them would.
            self.saved = config
            if self.config is None:
                self.config = config
            return
        keep = action in (_Config.RECONCILE_AND_COMMIT, _Config.COMMIT) and self.config is not None
        if not keep:
            # A new pipeline starts with empty tables (spec 7.4).
            self.store.clear()
            self.dataplane.reset()
        self.config, self.saved = config, None

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
        self._check_config(context)
        if request.atomicity != p4r.WriteRequest.CONTINUE_ON_ERROR:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "only CONTINUE_ON_ERROR atomicity is supported")
        start = time.monotonic()
        with self.lock:
            errors = self.writer.write(list(request.updates))
        self._count_write(request, errors, time.monotonic() - start)
        if any(err is not None for err in errors):
            context.abort_with_status(batch_status(errors, "updates"))
        return p4r.WriteResponse()

    def _count_write(self, request: p4r.WriteRequest, errors: list[P4Error | None], seconds: float) -> None:
        if self.metrics is None:
            return
        self.metrics.write_seconds.observe(seconds)
        for update, err in zip(request.updates, errors):
            if err is not None:
                self.metrics.errors.labels(code=rpc_code.Code.Name(rpc_code.Code.ValueType(err.code))).inc()
                continue
            table = self.pipeline.table_by_id(update.entity.table_entry.table_id)
            self.metrics.updates.labels(type=OPS.get(update.type, "?"), table=table.name if table else "?").inc()

    def Read(self, request: p4r.ReadRequest, context: grpc.ServicerContext) -> Iterator[p4r.ReadResponse]:
        start = time.monotonic()
        try:
            yield from self._read(request, context)
        finally:
            if self.metrics is not None:
                self.metrics.read_seconds.observe(time.monotonic() - start)

    def _read(self, request: p4r.ReadRequest, context: grpc.ServicerContext) -> Iterator[p4r.ReadResponse]:
        self._check_device(request.device_id, context)
        self._check_config(context)
        # Spec 11 (Read, batch processing): each request is answered or gets
        # its own p4.Error; any error makes the status UNKNOWN with one
        # p4.Error per request, as Write does.
        errors: list[P4Error | None] = []
        response = p4r.ReadResponse()
        for wanted in request.entities:
            try:
                found = self.reader.entity(wanted)
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
            context.abort_with_status(batch_status(errors, "reads"))

    def StreamChannel(self, request_iterator: Iterator[p4r.StreamMessageRequest],
                      context: grpc.ServicerContext) -> Iterator[p4r.StreamMessageResponse]:
        return self.arbitration.channel(request_iterator, context)


def batch_status(errors: list[P4Error | None], what: str) -> grpc.Status:
    """Spec 12.3 (and 11 for reads): status UNKNOWN, one p4.v1.Error per
    update or read request in the details, OK for those that succeeded. The
    message equals the call's details, which grpcio-status checks."""
    failed = sum(err is not None for err in errors)
    status = rpc_status.Status(code=rpc_code.UNKNOWN, message=f"{failed} of {len(errors)} {what} failed")
    for err in errors:
        detail = p4r.Error(canonical_code=rpc_code.OK)
        if err is not None:
            detail = p4r.Error(canonical_code=err.code, message=err.message)
        status.details.add().Pack(detail)
    return grpc_rpc_status.to_status(status)


def serve(dataplane: Dataplane, address: str, device_id: int = 1, pipeline: Pipeline = PIPELINE,
          metrics: P4RuntimeMetrics | None = None,
          credentials: grpc.ServerCredentials | None = None) -> tuple[grpc.Server, IpuServicer]:
    """Start the P4Runtime server (over TLS when given credentials); the caller waits on and stops it."""
    dataplane.reset()
    servicer = IpuServicer(dataplane, device_id, pipeline, metrics)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_receive_message_length", 256 << 20),
                                  ("grpc.max_send_message_length", 256 << 20),
                                  # One target per port: without this a second
                                  # target (or anything) on the port shares it.
                                  ("grpc.so_reuseport", 0), *keepalive.SERVER])
    p4r_grpc.add_P4RuntimeServicer_to_server(servicer, server)
    bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"--port: cannot listen on {address}")
    server.start()
    log.info("P4Runtime target for device %d listening on %s%s", device_id, address, " (TLS)" if credentials else "")
    return server, servicer
