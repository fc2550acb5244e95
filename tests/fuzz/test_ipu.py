"""The IPU target (`multinet ipu`) over a real gRPC channel with generated requests.

A hypothesis state machine, its requests built from the P4Info the target
returns: Write batches mixing sound updates and ones with one named flaw
(tests.support.p4_fuzz), request-wide faults (device, election, role,
atomicity), Read batches of good and bad requests, every
SetForwardingPipelineConfig action with the target's P4Info and with others,
and StreamChannel sessions of arbitrations, packets and digests. Every error
is the spec's shape (section 12), every code one the spec allows for what was
sent, and after every step a wildcard Read equals the model of the writes the
target accepted. At the end, deleting every entry leaves the IPU namespace as
the empty pipeline: no tunnel, rule, route or nft element left behind.
"""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from finsy.proto import p4i, p4r, p4r_grpc, rpc_code
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from datapath.client.p4rt import wait_for
from datapath.pipeline import p4info, pipeline
from tests.support import cni as testing
from tests.support import p4_fuzz as gen
from tests.support.fuzz import TALLY
from tests.support.p4_model import Planned, Tables, altered, batch_status, flaw, leftovers, same_entries

pytestmark = pytest.mark.netns
C = rpc_code
TARGET = "ipu target"
DEVICE = 1
ELECTION = 1 << 100  # ours; generated controllers stay below it, so we stay primary
SIZES = {"port": 2, "route": 6, "neighbor": 4, "service": 3, "policy_pod": 4, "policy_rule": 6}
PORTS = ("fzp0", "fzp1", "fzp2")
A = p4r.SetForwardingPipelineConfigRequest


def uint128(value: int) -> p4r.Uint128:
    return p4r.Uint128(high=value >> 64, low=value & ((1 << 64) - 1))


@dataclass
class Session:
    stub: p4r_grpc.P4RuntimeStub
    info: gen.Info
    p4info: p4i.P4Info
    netns: str
    log: Path
    up: set[str] = field(default_factory=set)  # port links a port entry has brought up (they stay up)

    def write(self, updates: list[p4r.Update], **fields: Any) -> grpc.RpcError | None:
        request = p4r.WriteRequest(device_id=DEVICE, election_id=uint128(ELECTION), updates=updates,
                                   atomicity=p4r.WriteRequest.CONTINUE_ON_ERROR)
        for name, value in fields.items():
            if name == "election_id":
                request.election_id.CopyFrom(value)
            else:
                setattr(request, name, value)
        try:
            self.stub.Write(request, timeout=60)
        except grpc.RpcError as err:
            return err
        return None

    def read(self, entities: list[p4r.Entity], device: int = DEVICE) -> tuple[list[p4r.Entity], grpc.RpcError | None]:
        got: list[p4r.Entity] = []
        try:
            for response in self.stub.Read(p4r.ReadRequest(device_id=device, entities=entities), timeout=60):
                got.extend(response.entities)
        except grpc.RpcError as err:
            return got, err
        return got, None

    def set_pipeline(self, action: int, config: p4i.P4Info | None, **fields: Any) -> grpc.RpcError | None:
        request = A(device_id=DEVICE, election_id=uint128(ELECTION))
        request.action = action  # type: ignore[assignment]  # out-of-enum values are cases too
        if config is not None:
            request.config.p4info.CopyFrom(config)
        for name, value in fields.items():
            getattr(request, name).CopyFrom(value) if name == "election_id" else setattr(request, name, value)
        try:
            self.stub.SetForwardingPipelineConfig(request, timeout=60)
        except grpc.RpcError as err:
            return err
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stream(stub: p4r_grpc.P4RuntimeStub, first: p4r.StreamMessageRequest
            ) -> tuple["queue.Queue[p4r.StreamMessageRequest | None]", Any, "queue.Queue[Any]"]:
    """A StreamChannel: its outbox (None ends it), the call, and what it answered."""
    outbox: queue.Queue[p4r.StreamMessageRequest | None] = queue.Queue()
    outbox.put(first)
    answers: queue.Queue[Any] = queue.Queue()
    call = stub.StreamChannel(iter(outbox.get, None))

    def pump() -> None:
        try:
            for msg in call:
                answers.put(msg)
        except grpc.RpcError as err:
            answers.put(err)
        answers.put(None)
    threading.Thread(target=pump, daemon=True).start()
    return outbox, call, answers


@pytest.fixture(scope="module")
def session(root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    netns = testing.Namespaces("fz")
    proc = None
    log = tmp_path_factory.mktemp("ipu") / "ipu.log"
    try:
        ns = netns.new("ipu")
        for name in PORTS:
            testing.run("ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", name + "x")
        address = f"127.0.0.1:{_free_port()}"
        argv = [str(Path(sys.executable).with_name("multinet")), "ipu", "--netns", ns, "--port", address.split(":")[1],
                "--prefix", "fz", *[f"--size={t}={n}" for t, n in SIZES.items()]]
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        wait_for(address)
        channel = grpc.insecure_channel(address)
        stub = p4r_grpc.P4RuntimeStub(channel)
        arbitration = p4r.StreamMessageRequest()
        arbitration.arbitration.device_id = DEVICE
        arbitration.arbitration.election_id.CopyFrom(uint128(ELECTION))
        outbox, _, answers = _stream(stub, arbitration)
        assert answers.get(timeout=30).arbitration.status.code == C.OK
        s = Session(stub, gen.Info(p4info(pipeline(SIZES))), p4info(pipeline(SIZES)), ns, log)
        assert s.set_pipeline(A.VERIFY_AND_COMMIT, s.p4info) is None
        # The generator is built from the P4Info the target returns, not from ours.
        got = stub.GetForwardingPipelineConfig(p4r.GetForwardingPipelineConfigRequest(device_id=DEVICE), timeout=30)
        assert got.config.p4info == s.p4info
        s.info = gen.Info(got.config.p4info)
        yield s
        outbox.put(None)
        channel.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        netns.close()


class IpuMachine(RuleBasedStateMachine):
    s: Session  # set by the test

    def __init__(self) -> None:
        super().__init__()
        assert self.s.set_pipeline(A.VERIFY_AND_COMMIT, self.s.p4info) is None  # each case starts empty
        # ... and with every port link down, as the session made them: a port entry
        # brings its link up for good, and a case whose routes succeed or fail by what
        # an earlier case left draws differently when Hypothesis replays it (which it
        # refuses as a flaky strategy).
        for name in sorted(self.s.up):
            testing.run("ip", "-n", self.s.netns, "link", "set", name, "down")
        self.s.up.clear()
        self.model = Tables(self.s.info)
        self.saved = False
        self.sound = gen.entries(self.s.info, PORTS)
        self.history: list[str] = []  # the writes of this case, for a failure's message

    def plan(self, data: st.DataObject) -> Planned:
        e = data.draw(self.sound)
        again: bool = data.draw(st.booleans())
        if again and self.model.entries:  # often an entry the target holds
            e = data.draw(st.sampled_from(sorted(self.model.entries.values(), key=repr)))
            e = data.draw(st.just(e) | self.sound.map(lambda o: o if o.table != e.table else self.rekeyed(e, o)))
        op = data.draw(st.sampled_from([gen.INSERT, gen.INSERT, gen.INSERT, gen.MODIFY, gen.DELETE, gen.DELETE]))
        name = data.draw(st.none() | st.none() | st.sampled_from(sorted(gen.FLAWS)))
        return flaw(self.s.info, e, op, name, data, pad=data.draw(st.sampled_from([0, 0, 0, 1, 3])))

    def rekeyed(self, held: gen.Entry, other: gen.Entry) -> gen.Entry:
        """`held`'s key with `other`'s action, where that stays sound: a sound route
        tunnels only to a host (a tunnel to a prefix is a flaw of its own, refused as
        UNIMPLEMENTED), so a tunnel action on a prefix's key leaves `held` as it is."""
        entry = gen.Entry(held.table, held.match, held.priority, other.action, other.metadata)
        action = other.action
        if action is None or action[0] != "direct" or action[1] != self.s.info.action_ids["to_tunnel"]:
            return entry
        dst = [(fid, m) for fid, m in held.match if m[0] == "lpm"]
        host = bool(dst) and dst[0][1][2] == self.s.info.field(held.table, dst[0][0]).bitwidth
        return entry if host else held

    @rule(data=st.data(), n=st.integers(1, 8))
    def write(self, data: st.DataObject, n: int) -> None:
        planned = [self.plan(data) for _ in range(n)]
        messages: list[str] = []
        codes, problems = batch_status(self.s.write([p.update for p in planned]), n, messages)
        assert not problems and codes is not None, (problems, self.log())
        messages = messages or [""] * n
        for p, code, message in zip(planned, codes, messages):
            allowed = self.model.allowed(p)
            if allowed == {C.OK} and self.through_a_down_port(p):
                # The kernel routes only through a link that is up (ENETDOWN).
                allowed = frozenset({C.INTERNAL, C.FAILED_PRECONDITION})
            TALLY.count(TARGET, f"write {p.flaw or 'sound'}: {code_name(code)}")
            if code not in allowed:
                pytest.fail(f"{gen.OPS[p.op]} {p.flaw or 'sound'} {p.entry}: {code_name(code)} {message!r}, "
                            f"allowed {[code_name(c) for c in allowed]}; after:\n" + "\n".join(self.history))
            if code == C.OK:
                self.model.apply(p)
                if p.entry.table == self.s.info.by_name["port"].preamble.id and p.op != gen.DELETE:
                    self.s.up.add(p.entry.match[0][1][1])
            self.history.append(f"{gen.OPS[p.op]} {p.flaw or 'sound'} {p.entry} -> {code_name(code)}")

    def through_a_down_port(self, p: Planned) -> bool:
        action = p.entry.action
        return (p.op != gen.DELETE and action is not None and action[0] == "direct"
                and action[1] == self.s.info.action_ids["to_port"] and action[2][0][1] not in self.s.up)

    @rule(what=st.sampled_from(["device", "election", "role", "atomicity"]))
    def write_refused_whole(self, what: str) -> None:
        faults: dict[str, dict[str, Any]] = {
            "device": {"device_id": 7}, "election": {"election_id": uint128(ELECTION - 1)},
            "role": {"role": "fz-other"}, "atomicity": {"atomicity": p4r.WriteRequest.DATAPLANE_ATOMIC}}
        fields = faults[what]
        e = gen.Entry(self.s.info.by_name["route"].preamble.id, ((1, ("exact", 1)),), 0,
                      ("direct", self.s.info.action_ids["drop"], ()))
        err = self.s.write([flaw(self.s.info, e, gen.INSERT, None, None).update], **fields)  # type: ignore[arg-type]
        codes, problems = batch_status(err, 1)
        expect = {"device": grpc.StatusCode.NOT_FOUND, "election": grpc.StatusCode.PERMISSION_DENIED,
                  "role": grpc.StatusCode.NOT_FOUND, "atomicity": grpc.StatusCode.UNIMPLEMENTED}[what]
        TALLY.count(TARGET, f"write with a wrong {what}: {err.code().name if err else 'OK'}")
        assert err is not None and err.code() == expect and codes is None and not problems, (err, problems)

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        info, requests = self.s.info, []
        for _ in range(data.draw(st.integers(1, 4))):
            requests.append(data.draw(st.sampled_from(["all", "table", "key", "unknown table", "no kind",
                                                       "counter", "partial key"])))
        entities, wanted = [], []
        for kind in requests:
            entity, expect = p4r.Entity(), None
            if kind == "all":
                entity.table_entry.SetInParent()
                expect = list(self.model.entries.values())
            elif kind == "table":
                t = data.draw(st.sampled_from(sorted(info.tables)))
                entity.table_entry.table_id = t
                expect = [e for e in self.model.entries.values() if e.table == t]
            elif kind == "key":
                held = sorted(self.model.entries.values(), key=repr)
                from_held: bool = bool(held) and data.draw(st.booleans())
                e = data.draw(st.sampled_from(held) if from_held else self.sound)
                entity.table_entry.CopyFrom(gen.encode(info, gen.Entry(e.table, e.match, e.priority, None)))
                expect = [x for k, x in self.model.entries.items() if k == e.key]
            elif kind == "unknown table":
                entity.table_entry.table_id = 77
            elif kind == "counter":
                entity.counter_entry.counter_id = 1
            elif kind == "partial key":
                entity.table_entry.table_id = info.by_name["neighbor"].preamble.id
                entity.table_entry.match.add(field_id=2).exact.value = b"\x0a\x01\x00\x01"
            entities.append(entity)
            wanted.append(expect)
        got, err = self.s.read(entities)
        codes, problems = batch_status(err, len(entities))
        assert not problems and codes is not None, problems
        for kind, code, expect in zip(requests, codes, wanted):
            TALLY.count(TARGET, f"read {kind}: {code_name(code)}")
            assert (code == C.OK) == (expect is not None), (kind, code_name(code))
        # Spec 11: each request answered in full, so an entry two requests select comes twice.
        got_entries = sorted((repr(gen.decode(info, g.table_entry).key), gen.decode(info, g.table_entry))
                             for g in got)
        want_entries = sorted((repr(e.key), e) for want in wanted if want for e in want)
        problems = [] if [repr(e) for _, e in got_entries] == [repr(e) for _, e in want_entries] else [
            f"read {[e for _, e in got_entries]}, the model has {[e for _, e in want_entries]}"]
        problems += [p for g in got for p in gen.not_canonical(g.table_entry)]
        assert not problems, problems

    @rule(action=st.sampled_from(["VERIFY", "VERIFY_AND_SAVE", "VERIFY_AND_COMMIT", "RECONCILE_AND_COMMIT",
                                  "COMMIT", "COMMIT with a config", "UNSPECIFIED", "99"]),
          config=st.sampled_from(["ours", "ours", "ours", "table size", "table dropped", "empty", "renamed"]),
          who=st.sampled_from(["primary", "primary", "primary", "backup", "other device"]))
    def set_pipeline(self, action: str, config: str, who: str) -> None:
        number = {"UNSPECIFIED": 0, "99": 99, "COMMIT with a config": A.COMMIT}.get(action) or A.Action.Value(action)
        given = None if action == "COMMIT" else self.s.p4info if config == "ours" else altered(self.s.p4info, config)
        faults: dict[str, dict[str, Any]] = {"backup": {"election_id": uint128(5)}, "other device": {"device_id": 9}}
        fields = faults.get(who, {})
        err = self.s.set_pipeline(number, given, **fields)
        codes, problems = batch_status(err, 0)
        assert codes is None or err is None, problems
        if who != "primary":
            expect = C.PERMISSION_DENIED if who == "backup" else C.NOT_FOUND
        elif number not in (A.VERIFY, A.VERIFY_AND_SAVE, A.VERIFY_AND_COMMIT, A.COMMIT, A.RECONCILE_AND_COMMIT):
            expect = C.INVALID_ARGUMENT
        elif action == "COMMIT":
            expect = C.OK if self.saved else C.NOT_FOUND
        else:
            expect = C.INVALID_ARGUMENT if action == "COMMIT with a config" or config != "ours" else C.OK
        got = C.OK if err is None else err.code().value[0]
        TALLY.count(TARGET, f"set pipeline {action} ({config}, {who}): {C.Code.Name(got)}")
        assert got == expect and not problems, (action, config, who, err, problems)
        if got == C.OK and number == A.VERIFY_AND_COMMIT:
            self.model.entries.clear()  # a new pipeline starts empty (spec 7.4)
        if got == C.OK and number in (A.VERIFY_AND_SAVE, A.COMMIT, A.VERIFY_AND_COMMIT, A.RECONCILE_AND_COMMIT):
            self.saved = number == A.VERIFY_AND_SAVE
        reply = self.s.stub.GetForwardingPipelineConfig(p4r.GetForwardingPipelineConfigRequest(device_id=DEVICE))
        assert reply.config.p4info == self.s.p4info

    @rule(data=st.data())
    def stream(self, data: st.DataObject) -> None:
        """Another controller's stream: arbitrations (never above ours), packets, digests."""
        messages, expected_end, live, answers_wanted = [], None, False, 0
        for _ in range(data.draw(st.integers(1, 5))):
            kind = data.draw(st.sampled_from(["backup", "backup", "no election", "other device", "role",
                                              "our election", "packet", "digest ack", "empty"]))
            msg = p4r.StreamMessageRequest()
            if kind in ("backup", "no election", "other device", "role", "our election"):
                arb = msg.arbitration
                arb.device_id = 9 if kind == "other device" else DEVICE
                if kind == "backup":
                    arb.election_id.CopyFrom(uint128(data.draw(st.integers(0, 1 << 80))))
                elif kind == "our election":
                    arb.election_id.CopyFrom(uint128(ELECTION))
                if kind == "role":
                    arb.role.name = "fz-role"
            elif kind == "packet":
                msg.packet.payload = data.draw(st.binary(max_size=64))
            elif kind == "digest ack":
                msg.digest_ack.digest_id, msg.digest_ack.list_id = 1, 2
            messages.append(msg)
            if expected_end is None:
                if kind in ("other device", "role"):
                    codes = {("other device", False): C.NOT_FOUND, ("role", False): C.UNIMPLEMENTED}
                    expected_end = codes.get((kind, live), C.FAILED_PRECONDITION)
                elif kind == "our election":
                    expected_end = C.INVALID_ARGUMENT
                else:
                    live = live or kind in ("backup", "no election")
                    answers_wanted += 1
        outbox, call, answers = _stream(self.s.stub, messages[0])
        for msg in messages[1:]:
            outbox.put(msg)
        outbox.put(None)
        seen, end = [], C.OK
        while (got := answers.get(timeout=30)) is not None:
            if isinstance(got, grpc.RpcError):
                end = got.code().value[0]
            else:
                seen.append(got)
        for got in seen:
            kind = got.WhichOneof("update")
            assert (kind == "arbitration" and got.arbitration.status.code == C.ALREADY_EXISTS) or (
                kind == "error" and got.error.canonical_code == C.UNIMPLEMENTED and got.error.message), got
        TALLY.count(TARGET, f"stream of {len(messages)}: {C.Code.Name(end)}, {len(seen)} answers")
        assert end == (expected_end if expected_end is not None else C.OK), (messages, end)
        if expected_end is None:
            assert len(seen) == answers_wanted, (messages, seen)
        # We are still the primary: an empty Write passes.
        assert self.s.write([]) is None

    @invariant()
    def tables_equal_the_model(self) -> None:
        entity = p4r.Entity()
        entity.table_entry.SetInParent()
        got, err = self.s.read([entity])
        assert err is None, err
        problems = same_entries(self.s.info, [g.table_entry for g in got], self.model.entries)
        assert not problems, (problems, self.log())

    def teardown(self) -> None:
        """Every entry deleted, one update each: the realizers release all they made."""
        planned = [flaw(self.s.info, e, gen.DELETE, None, None) for e in self.model.entries.values()]  # type: ignore[arg-type]
        if planned:
            codes, problems = batch_status(self.s.write([p.update for p in planned]), len(planned))
            assert codes == [C.OK] * len(planned) and not problems, (codes, problems, self.log())
        self.model.entries.clear()
        found = leftovers(self.s.netns)
        TALLY.count(TARGET, "all deleted: " + ("kernel clean" if not found else "left behind"))
        if found:
            pytest.fail(f"left behind {found}; after:\n" + "\n".join(self.history))

    def log(self) -> str:
        return self.s.log.read_text(errors="replace")[-3000:]


def test_generated_requests_keep_the_tables_equal_to_the_model(session: Session) -> None:
    IpuMachine.s = session
    # No shrinking: the target's state outlives a case, and a failure's message
    # lists the case's writes, which is what a shrunk case would show.
    run_state_machine_as_test(IpuMachine, settings=settings(
        max_examples=20, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.reuse, Phase.generate]))


def code_name(code: int) -> str:
    """The google.rpc code's name (types-protobuf wants its ValueType; the value is that int)."""
    return str(C.Code.Name(code))  # type: ignore[arg-type]  # types-protobuf: ValueType is the int itself
