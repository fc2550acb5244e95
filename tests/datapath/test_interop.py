"""What a third-party controller relies on: the checked-in P4Info, and error
statuses that grpcio-status reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from finsy.proto import p4i, p4r, rpc_code
from finsy.proto.google.rpc.status_pb2 import Status  # the class google.rpc.status_pb2 gives too
from google.protobuf import text_format
from grpc_status import rpc_status

from datapath.client.p4rt import INSERT, P4RuntimeClient
from datapath.entries import encode
from datapath.pipeline import P4INFO_FILE, PIPELINE, p4info, p4info_text, pipeline
from tests.datapath.conftest import Env, netns
from tests.datapath.test_p4runtime import route

CHECKED_IN = Path(__file__).resolve().parents[2] / "datapath" / P4INFO_FILE


def test_checked_in_p4info_matches_the_description() -> None:
    assert CHECKED_IN.read_text() == p4info_text(PIPELINE), (
        f"{CHECKED_IN.name} is stale: run multinet ipu --p4info-out datapath/{P4INFO_FILE}")
    assert text_format.Parse(CHECKED_IN.read_text(), p4i.P4Info()) == p4info()


def test_ipu_writes_the_p4info_with_its_table_sizes(tmp_path: Path) -> None:
    out = tmp_path / "ipu.p4info.txt"
    subprocess.run([sys.executable, "-m", "multinet.cli", "ipu", "--size", "service=123", "--p4info-out", str(out)],
                   check=True, capture_output=True, text=True)
    written = text_format.Parse(out.read_text(), p4i.P4Info())
    assert written == p4info(pipeline({"service": 123})) and written != p4info()
    refused = subprocess.run([sys.executable, "-m", "multinet.cli", "ipu", "--size", "nope=1",
                              "--p4info-out", str(out)], capture_output=True, text=True)
    assert refused.returncode == 2 and "--size" in refused.stderr and "nope" in refused.stderr


def _p4_errors(status: Status) -> list[tuple[int, str]]:
    errors = []
    for detail in status.details:
        e = p4r.Error()
        assert detail.Unpack(e)
        errors.append((e.canonical_code, e.message))
    return errors


@netns
def test_write_and_read_errors_are_readable_by_grpcio_status(env: Env) -> None:
    env.node("n1")
    client = P4RuntimeClient(env.targets["n1"].address)
    assert client.connect()
    client.set_pipeline()
    client.write([(INSERT, route(0))])
    stub = client._stub()
    req = p4r.WriteRequest(device_id=1, election_id=p4r.Uint128(low=1))
    for r in (route(0), route(1)):  # the first exists already, the second is fine
        req.updates.add(type=p4r.Update.INSERT).entity.table_entry.CopyFrom(encode(r))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Write(req)
    assert isinstance(caught.value, grpc.Call)
    status = rpc_status.from_call(caught.value)  # raises ValueError when message and details differ
    assert status is not None and status.code == rpc_code.UNKNOWN
    assert status.message == caught.value.details() == "1 of 2 updates failed"
    [(code, message), ok] = _p4_errors(status)
    assert code == rpc_code.ALREADY_EXISTS and "route" in message and ok[0] == rpc_code.OK
    # A Read batch with a bad request: the same, per read request.
    read = p4r.ReadRequest(device_id=1)
    read.entities.add().table_entry.table_id = PIPELINE.table("route").id
    read.entities.add().table_entry.table_id = 0x02000999  # no such table
    with pytest.raises(grpc.RpcError) as caught:
        for _ in stub.Read(read):
            pass
    assert isinstance(caught.value, grpc.Call)
    status = rpc_status.from_call(caught.value)
    assert status is not None and status.message == caught.value.details() == "1 of 2 reads failed"
    assert [code for code, _ in _p4_errors(status)] == [rpc_code.OK, rpc_code.NOT_FOUND]
    client.close()
