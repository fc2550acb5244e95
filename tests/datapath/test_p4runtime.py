"""P4Runtime semantics of the IPU target over real gRPC."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest
from finsy.proto import p4r, p4r_grpc, rpc_code

from agent.compile import compile_policies, compile_services
from datapath.client.datapath import P4RuntimeDatapath, port_entries
from datapath.client.p4rt import (DELETE, INSERT, MODIFY, ArbitrationError, NotPrimaryError, P4RuntimeClient,
                                  WriteError, _write_error, wait_for)
from datapath.entries import ActionCall, Entry, Exact, decode, encode, entry, ip, prefix
from datapath.pipeline import Pipeline, p4info, pipeline
from tests.datapath.conftest import NFT_TABLE, PREFIX, Env, netns
from tests.datapath.test_policy import NAMESPACES, POLICIES, pod_dict
from tests.datapath.test_services import _service, _slice
from tests.support.testbed import start_target
from tests.support.wait import wait_for as poll


def route(n: int, net: int = 100) -> Entry:
    return entry("route", {"network_id": Exact(net), "dst": prefix(f"10.2.{n // 250}.{n % 250 + 1}/32")},
                 ActionCall("drop"))


@netns
def test_a_write_in_several_batches_lands_in_order_and_indexes_its_errors_in_the_whole(env: Env) -> None:
    """Batches are pipelined (the next encoded while one is in flight), yet each
    depends on the one before it landing first, and a refused update is named by
    its place in the whole write."""
    env.sizes = {"route": 4}
    env.node("n1")
    client = P4RuntimeClient(env.targets["n1"].address, pipeline=_small())
    assert client.connect()
    client.set_pipeline()
    tunnel = entry("route", {"network_id": Exact(100), "dst": prefix("10.2.0.1/32")},
                   ActionCall("to_tunnel", (ip("10.254.0.9"),)))
    with pytest.raises(WriteError) as caught:
        client.write([
            (INSERT, route(0)), (INSERT, route(1)),  # batch 1
            (MODIFY, tunnel), (DELETE, route(1)),     # batch 2: needs batch 1 landed
            (INSERT, route(0)), (INSERT, route(1)),   # batch 3: exists; fine again after the delete
            (INSERT, route(2)), (INSERT, route(3)),   # batch 4: fills the table
            (INSERT, route(4)),                       # batch 5: no room
        ], batch=2)
    assert {e.index: e.code for e in caught.value.errors} == {4: rpc_code.ALREADY_EXISTS,
                                                              8: rpc_code.RESOURCE_EXHAUSTED}
    have = {e.key: e for e in client.read("route")}
    assert sorted(have) == sorted(route(n).key for n in range(4))
    assert have[route(0).key] == tunnel
    client.close()


@netns
def test_write_errors_are_reported_per_update_while_the_others_apply(env: Env) -> None:
    env.sizes = {"route": 4}
    env.node("n1")
    client = P4RuntimeClient(env.targets["n1"].address, pipeline=_small())
    assert client.connect()
    client.set_pipeline()
    client.write([(INSERT, route(0)), (INSERT, route(1))])
    with pytest.raises(WriteError) as caught:
        client.write([
            (INSERT, route(0)),   # exists
            (MODIFY, route(7)),   # missing
            (DELETE, route(8)),   # missing
            (INSERT, route(2)),   # fine
            (INSERT, route(3)),   # fine: the table is now full
            (INSERT, route(4)),   # no room
            (MODIFY, entry("route", {"network_id": Exact(100), "dst": prefix("10.2.0.2/32")},
                           ActionCall("to_tunnel", (ip("10.254.0.9"),)))),  # fine
        ])
    codes = {e.index: e.code for e in caught.value.errors}
    assert codes == {0: rpc_code.ALREADY_EXISTS, 1: rpc_code.NOT_FOUND, 2: rpc_code.NOT_FOUND,
                     5: rpc_code.RESOURCE_EXHAUSTED}
    have = {e.key: e for e in client.read("route")}
    assert len(have) == 4
    assert have[route(1).key].actions[0].name == "to_tunnel"
    # The realization followed: the modified route goes through the tunnel device.
    routes = subprocess.run(["ip", "-n", env.testbed.nodes["n1"].ipu_ns, "route", "show", "table", "all"],
                            capture_output=True, text=True, check=True).stdout
    assert f"10.2.0.2 dev {PREFIX}v100" in routes and "blackhole 10.2.0.3" in routes
    client.close()


def _small() -> Pipeline:
    return pipeline({"route": 4})


@netns
def test_arbitration_refuses_writes_from_a_backup(env: Env) -> None:
    env.node("n1")
    address = env.targets["n1"].address
    primary, backup = P4RuntimeClient(address, election_id=10), P4RuntimeClient(address, election_id=5)
    assert primary.connect()
    assert not backup.connect()
    primary.set_pipeline()
    with pytest.raises(NotPrimaryError):
        backup.write([(INSERT, route(0))])
    with pytest.raises(grpc.RpcError) as caught:
        backup.set_pipeline()
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    primary.write([(INSERT, route(0))])
    assert [e.key for e in backup.read()] == [route(0).key]  # backups may read
    # A client with the same election id as another is refused: the target
    # ends its stream with INVALID_ARGUMENT (spec 5.3).
    twin = P4RuntimeClient(address, election_id=10)
    with pytest.raises(ArbitrationError, match="INVALID_ARGUMENT"):
        twin.connect(timeout=2)
    # When the primary leaves, no backup is promoted by itself: each hears
    # NOT_FOUND with the highest election id seen, and writes are refused.
    primary.close()
    assert _eventually(lambda: backup.last_arbitration is not None
                       and backup.last_arbitration.status.code == rpc_code.NOT_FOUND)
    assert _heard(backup).election_id.low == 10 and not backup.primary
    with pytest.raises(NotPrimaryError):
        backup.write([(INSERT, route(1))])
    # An id below the highest seen stays backup; at or above it, primary.
    assert not backup.arbitrate(9)
    assert backup.arbitrate(10)
    backup.write([(INSERT, route(1))])
    # A higher election id takes over; the old primary is refused again.
    higher = P4RuntimeClient(address, election_id=20)
    assert higher.connect()
    assert _eventually(lambda: not backup.primary)
    assert _heard(backup).status.code == rpc_code.ALREADY_EXISTS
    with pytest.raises(NotPrimaryError):
        backup.write([(DELETE, route(1))])
    # The primary downgrading itself leaves no primary: everyone hears NOT_FOUND.
    assert not higher.arbitrate(3)
    assert _eventually(lambda: _heard(backup).status.code == rpc_code.NOT_FOUND)
    assert _heard(backup).election_id.low == 20
    higher.close()
    backup.close()


@netns
def test_arbitration_for_another_device_or_role_ends_the_stream(env: Env) -> None:
    env.node("n1")
    address = env.targets["n1"].address
    stranger = P4RuntimeClient(address, device_id=7)
    with pytest.raises(ArbitrationError, match="NOT_FOUND"):
        stranger.connect(timeout=2)
    client = P4RuntimeClient(address)
    assert client.connect()
    client.device_id = 8  # a live stream may not change its device
    with pytest.raises(ArbitrationError, match="FAILED_PRECONDITION"):
        client.arbitrate(1)
    client.close()


def _heard(client: P4RuntimeClient) -> p4r.MasterArbitrationUpdate:
    """The latest arbitration notice the client heard."""
    assert client.last_arbitration is not None
    return client.last_arbitration


def _eventually(check, timeout: float = 5) -> bool:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def _kernel_state(env: Env, node: str) -> tuple[str, str, str]:
    ns = env.testbed.nodes[node].ipu_ns

    def run(*argv: str) -> str:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=True).stdout

    nft = "\n".join(line for line in run("nft", "list", "table", "inet", NFT_TABLE).splitlines()
                    if "packets" not in line)  # counters restart with the target
    return nft, run("ip", "rule"), run("ip", "-4", "route", "show", "table", "all")


@netns
def test_target_restart_then_reconcile_restores_identical_tables(two_nodes: Env) -> None:
    env = two_nodes
    pods = [env.pod("n1", name, 100, f"10.1.0.{i + 10}/24") for i, name in enumerate(["db", "web", "c1", "c2", "c3"])]
    objects = [pod_dict(p, "prod", {"app": "db" if p.name == "db" else "other"}) for p in pods]
    state = (compile_policies(POLICIES, objects, NAMESPACES, {"blue": 100}, node_name="n1")
             + compile_services([_service()], [_slice([p.ip for p in pods[:3]])], {"blue": 100}))
    dp = env.datapaths["n1"]
    dp.replace_state(state)
    before = sorted(map(repr, dp.client.read()))
    kernel_before = _kernel_state(env, "n1")
    assert len(before) > 20

    # An agent restart (new client, same desired state) writes nothing.
    dp.client.close()
    again = P4RuntimeDatapath(P4RuntimeClient(env.targets["n1"].address, election_id=2))
    again.ports, again.state = dict(dp.ports), list(state)
    assert again.reconnect() == 0

    # A target restart loses everything; the client's reconcile writes it back.
    env.targets["n1"].stop()
    env.start(env.testbed.nodes["n1"])
    assert _eventually(lambda: again.client.stream_closed.is_set())
    again.client = P4RuntimeClient(env.targets["n1"].address, election_id=2)
    assert again.reconnect() == len(before)
    assert sorted(map(repr, again.client.read())) == before
    assert _kernel_state(env, "n1") == kernel_before
    again.client.close()


@netns
def test_read_wildcards_and_filters(env: Env) -> None:
    # Spec "Wildcard Reads": table_id 0 reads every table; a match given is a
    # whole key (at most one entry); priority, action id and metadata filter.
    env.node("n1")
    client = P4RuntimeClient(env.targets["n1"].address)
    client.connect()
    client.set_pipeline()
    client.write([(INSERT, route(i, net)) for i in range(3) for net in (100, 200)])
    assert len(client.read()) == 6
    stub, route_id = client._stub(), client.pipeline.table("route").id

    def read(edit) -> list[p4r.TableEntry]:  # type: ignore[no-untyped-def]
        req = p4r.ReadRequest(device_id=1)
        te = req.entities.add().table_entry
        te.table_id = route_id
        edit(te)
        return [e.table_entry for r in stub.Read(req) for e in r.entities]

    # The prefix-0 route of network 200: its whole key is the network id alone.
    def key_only(te: p4r.TableEntry) -> None:
        te.match.add(field_id=1).exact.value = (200).to_bytes(1, "big")

    assert read(key_only) == []
    default = entry("route", {"network_id": Exact(200)}, ActionCall("drop"))
    client.write([(INSERT, default)])
    assert [decode(te) for te in read(key_only)] == [default]
    assert len(read(lambda te: te.match.extend(encode(route(1, 100)).match))) == 1
    assert len(read(lambda te: setattr(te.action.action, "action_id", client.pipeline.action("drop").id))) == 7
    assert read(lambda te: setattr(te.action.action, "action_id", client.pipeline.action("to_port").id)) == []
    assert read(lambda te: setattr(te, "metadata", b"nobody")) == []
    with pytest.raises(grpc.RpcError) as caught:  # a partial key is not a key
        read(lambda te: te.match.add(field_id=2).lpm.CopyFrom(encode(route(1)).match[1].lpm))
    assert _read_codes(caught.value) == [rpc_code.INVALID_ARGUMENT]
    # A batch of reads: the valid requests are answered, each failure has its
    # own p4.Error, in order, and the status is UNKNOWN (spec, Read RPC).
    req = p4r.ReadRequest(device_id=1)
    req.entities.add().table_entry.table_id = route_id
    req.entities.add().table_entry.table_id = 0x02000999  # no such table
    req.entities.add()  # no entity kind set
    got: list[p4r.Entity] = []
    with pytest.raises(grpc.RpcError) as caught:
        for r in stub.Read(req):
            got.extend(r.entities)
    assert len(got) == 7
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    assert _read_codes(caught.value) == [rpc_code.OK, rpc_code.NOT_FOUND, rpc_code.INVALID_ARGUMENT]
    client.close()


def _write_code(stub: p4r_grpc.P4RuntimeStub, req: p4r.WriteRequest) -> int:
    """Send a one-update WriteRequest; OK, or the canonical code of its p4.Error."""
    try:
        stub.Write(req)
    except grpc.RpcError as err:
        error = _write_error(err, 1)
        assert isinstance(error, WriteError)
        return error.errors[0].code
    return rpc_code.OK


def _read_codes(err: grpc.RpcError) -> list[int]:
    """The canonical code of each request's p4.Error in a failed batch."""
    from finsy.proto import rpc_status

    assert isinstance(err, grpc.Call)
    status = next(rpc_status.Status.FromString(v) for k, v in err.trailing_metadata() or ()
                  if k == "grpc-status-details-bin" and isinstance(v, bytes))
    codes = []
    for detail in status.details:
        e = p4r.Error()
        detail.Unpack(e)
        codes.append(e.canonical_code)
    return codes


@netns
def test_attach_is_idempotent_detach_of_unknown_is_fine_and_resync_repairs_drift(two_nodes: Env) -> None:
    env = two_nodes
    dp = env.datapaths["n1"]
    a = env.pod("n1", "a", 100, "10.1.0.2/24")
    before = dp.client.read()
    dp.attach(a.attachment)  # again: nothing to write
    assert dp.client.read() == before
    stranger = env.testbed.add_pod(env.testbed.nodes["n1"], "stranger", 100, "10.1.0.3/24")
    dp.detach(stranger.attachment)  # never attached
    assert dp.client.read() == before
    # Another writer removes an entry behind the agent's back; resync restores it.
    other = P4RuntimeClient(env.targets["n1"].address, election_id=99)
    assert other.connect()
    route_entry = next(e for e in before if e.table == "route")
    other.write([(DELETE, route_entry)])
    other.close()
    # Nobody is primary now (no backup is promoted by itself); the agent claims
    # primacy above the highest election id seen, then repairs.
    assert _eventually(lambda: dp.client.last_arbitration is not None
                       and dp.client.last_arbitration.status.code == rpc_code.NOT_FOUND)
    assert dp.resync() == 1
    assert dp.client.primary and dp.client.election_id == 100
    assert sorted(map(repr, dp.client.read())) == sorted(map(repr, before))
    dp.detach(a.attachment)
    assert dp.client.read() == []


@netns
def test_a_port_whose_link_is_gone_fails_only_its_own_attach(two_nodes: Env) -> None:
    """A port the agent still holds after its link vanished (its sandbox went while
    the agent was away) is refused by the target on every whole diff; another
    pod's attach and detach must still succeed, or no pod on the node could go."""
    import dataclasses

    env = two_nodes
    dp = env.datapaths["n1"]
    a = env.pod("n1", "a", 100, "10.1.0.2/24")
    gone = dataclasses.replace(env.testbed.add_pod(env.testbed.nodes["n1"], "gone", 100, "10.1.0.3/24").attachment,
                               representor=f"{PREFIX}gone0")
    with pytest.raises(WriteError):
        dp.attach(gone)  # its own entries are refused: no such link
    b = env.pod("n1", "b", 100, "10.1.0.4/24")  # a whole diff, the gone port's entries refused again
    dp.detach(a.attachment)
    dp.detach(b.attachment)
    held = {e.key for e in dp.client.read()}
    assert not held & {e.key for p in (a, b) for e in port_entries(p.attachment)}
    dp.detach(gone)
    assert dp.client.read() == []


@netns
def test_sync_loop_applies_marked_changes_and_survives_a_target_restart(env: Env) -> None:
    from datapath.client.sync import SyncLoop

    node = env.node("n1")
    dp = P4RuntimeDatapath(P4RuntimeClient(env.targets["n1"].address))
    dp.reconnect()
    wanted = [route(i) for i in range(3)]
    loop = SyncLoop(dp, lambda: list(wanted), min_interval=0.05, resync_interval=0.5)
    loop.start()
    try:
        assert _eventually(lambda: len(dp.client.read()) == 3)
        wanted.append(route(3))
        loop.mark_dirty()
        assert _eventually(lambda: len(dp.client.read()) == 4)
        # The target restarts empty, on the same port; the loop reconnects and
        # writes everything back.
        port = env.targets["n1"].address.rsplit(":", 1)[1]
        env.targets["n1"].stop()
        env.targets["n1"] = start_target(node, int(port), PREFIX, str(env.logs / "n1-again.log"), sys.executable)
        wait_for(env.targets["n1"].address)
        assert _eventually(lambda: _count(dp) == 4, timeout=15)
    finally:
        loop.stop()


@netns
def test_sync_loop_outlives_a_target_that_is_not_there_yet(env: Env) -> None:
    """The channel not getting ready in time (grpc.FutureTimeoutError, no
    RpcError) is a failed round like any other, not the end of the loop."""
    from datapath.client.sync import SyncLoop
    from tests.datapath.conftest import free_port

    node = env.testbed.add_node("n1")
    port = free_port()
    dp = P4RuntimeDatapath(P4RuntimeClient(f"127.0.0.1:{port}"))
    loop = SyncLoop(dp, lambda: [route(i) for i in range(3)], min_interval=0.05, resync_interval=0.2)
    loop.start()
    try:
        poll("a round that timed out connecting",
                 lambda: isinstance(loop.last_error, grpc.FutureTimeoutError), timeout=60)
        assert loop._thread.is_alive()
        env.targets["n1"] = start_target(node, port, PREFIX, str(env.logs / "n1.log"), sys.executable)
        assert _eventually(lambda: _count(dp) == 3, timeout=60)
    finally:
        loop.stop()


def _count(dp: P4RuntimeDatapath) -> int:
    try:
        return len(dp.client.read())
    except (grpc.RpcError, RuntimeError, ValueError):  # the loop may be reconnecting this very client
        return -1


@netns
def test_default_route_is_written_with_the_lpm_field_omitted_and_realized(env: Env) -> None:
    # P4Runtime 9.1.1: the prefix-0 LPM is omitted; the target takes it as the default route.
    env.node("n1")
    client = P4RuntimeClient(env.targets["n1"].address)
    assert client.connect()
    client.set_pipeline()
    client.write([(INSERT, route(0))])  # keeps network 100 alive throughout
    default = entry("route", {"network_id": Exact(100), "dst": prefix("0.0.0.0/0")}, ActionCall("drop"))
    req = p4r.WriteRequest(device_id=1, election_id=p4r.Uint128(low=1))
    update = req.updates.add(type=p4r.Update.INSERT)
    update.entity.table_entry.CopyFrom(encode(default))
    update.entity.table_entry.metadata = b"owner=test"
    assert [m.field_id for m in update.entity.table_entry.match] == [1]
    client._stub().Write(req)
    [got] = [e for e in client.read("route") if e.key == default.key]
    assert got.metadata == b"owner=test"  # metadata comes back on Read
    routes = subprocess.run(["ip", "-n", env.testbed.nodes["n1"].ipu_ns, "route", "show", "table", "all"],
                            capture_output=True, text=True, check=True).stdout
    assert "blackhole default table" in routes
    client.write([(DELETE, default)])
    routes = subprocess.run(["ip", "-n", env.testbed.nodes["n1"].ipu_ns, "route", "show", "table", "all"],
                            capture_output=True, text=True, check=True).stdout
    assert "blackhole default" not in routes
    assert f"default dev {PREFIX}v100 table" in routes  # the network's own default route is back
    client.close()


@netns
def test_routes_of_both_families_follow_insert_modify_and_delete_in_the_kernel(env: Env) -> None:
    """Each route is one netlink request of the target's own (not pyroute2's):
    what the kernel holds must follow every update, blackholes included."""
    env.node("n1")
    client = P4RuntimeClient(env.targets["n1"].address)
    assert client.connect()
    client.set_pipeline()
    v4 = [route(n) for n in range(3)]
    v6 = [entry("route6", {"network_id": Exact(100), "dst": prefix(f"fd02::{n + 1}/128")}, ActionCall("drop"))
          for n in range(3)]
    client.write([(INSERT, e) for e in v4 + v6])

    def kernel(version: str) -> str:
        return subprocess.run(["ip", version, "-n", env.testbed.nodes["n1"].ipu_ns, "route", "show", "table", "all"],
                              capture_output=True, text=True, check=True).stdout
    for n in range(3):
        assert f"blackhole 10.2.0.{n + 1} table" in kernel("-4") and f"blackhole fd02::{n + 1} " in kernel("-6")
    tunnel = entry("route", {"network_id": Exact(100), "dst": prefix("10.2.0.2/32")},
                   ActionCall("to_tunnel", (ip("10.254.0.9"),)))
    client.write([(MODIFY, tunnel), (DELETE, v4[0]), (DELETE, v6[0]), (DELETE, v6[1])])
    routes, routes6 = kernel("-4"), kernel("-6")
    assert "10.2.0.1 " not in routes and f"10.2.0.2 dev {PREFIX}v100 table" in routes
    assert "blackhole 10.2.0.2" not in routes and "blackhole 10.2.0.3 table" in routes
    assert "fd02::1 " not in routes6 and "fd02::2 " not in routes6 and "blackhole fd02::3 " in routes6
    client.write([(DELETE, tunnel), (DELETE, v4[2]), (DELETE, v6[2])])
    assert "10.2.0." not in kernel("-4") and "fd02::" not in kernel("-6")
    client.close()


@netns
def test_pipeline_config_actions_and_response_types(env: Env) -> None:
    env.node("n1")
    client = P4RuntimeClient(env.targets["n1"].address)
    assert client.connect()
    stub, A, R = client._stub(), p4r.SetForwardingPipelineConfigRequest, p4r.GetForwardingPipelineConfigRequest

    def set_config(action: p4r.SetForwardingPipelineConfigRequest.Action.ValueType, with_config: bool = True) -> None:
        req = A(device_id=1, election_id=p4r.Uint128(low=1), action=action)
        if with_config:
            req.config.p4info.CopyFrom(p4info())
            req.config.p4_device_config = b"ipu-blob"
            req.config.cookie.cookie = 42
        stub.SetForwardingPipelineConfig(req)

    # No config yet: Get answers with `config` unset, Read is FAILED_PRECONDITION.
    assert not stub.GetForwardingPipelineConfig(R(device_id=1)).HasField("config")
    with pytest.raises(grpc.RpcError) as caught:
        client.read()
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as caught:
        set_config(A.COMMIT, with_config=False)  # nothing saved to commit
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    set_config(A.VERIFY_AND_SAVE)
    client.write([(INSERT, route(0))])  # writes refer to the saved config; COMMIT keeps them
    with pytest.raises(grpc.RpcError) as caught:
        set_config(A.COMMIT)  # COMMIT carries no config
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    set_config(A.COMMIT, with_config=False)
    assert [e.key for e in client.read()] == [route(0).key]

    def get(kind: p4r.GetForwardingPipelineConfigRequest.ResponseType.ValueType) -> p4r.ForwardingPipelineConfig:
        return stub.GetForwardingPipelineConfig(R(device_id=1, response_type=kind)).config

    everything = get(R.ALL)
    assert everything.p4info == p4info() and everything.p4_device_config == b"ipu-blob"
    assert everything.cookie.cookie == 42
    assert get(R.DEVICE_CONFIG_AND_COOKIE).p4_device_config == b"ipu-blob"
    assert not get(R.DEVICE_CONFIG_AND_COOKIE).HasField("p4info")
    assert get(R.P4INFO_AND_COOKIE).p4_device_config == b""
    only = get(R.COOKIE_ONLY)
    assert only.cookie.cookie == 42 and not only.HasField("p4info") and only.p4_device_config == b""
    client.close()


@netns
def test_direct_counters_read_as_their_own_entity(env: Env) -> None:
    env.node("n1")
    client = P4RuntimeClient(env.targets["n1"].address)
    assert client.connect()
    client.set_pipeline()
    services = compile_services([_service()], [_slice(["10.1.0.5", "10.1.0.6"])], {"blue": 100})
    client.write([(INSERT, e) for e in services] + [(INSERT, route(0))])
    stub = client._stub()

    def read(table_id: int, key: Entry | None = None) -> list[p4r.Entity]:
        req = p4r.ReadRequest(device_id=1)
        te = req.entities.add().direct_counter_entry.table_entry
        te.table_id = table_id
        if key is not None:
            te.match.extend(encode(key).match)
        return [e for r in stub.Read(req) for e in r.entities]

    everything = read(0)  # every counted table; route has no direct counter
    assert len(everything) == len(services)
    assert all(e.WhichOneof("entity") == "direct_counter_entry" and e.direct_counter_entry.HasField("data")
               for e in everything)
    assert {e.direct_counter_entry.table_entry.table_id for e in everything} == {client.pipeline.table("service").id}
    assert not everything[0].direct_counter_entry.table_entry.HasField("action")
    service_id = client.pipeline.table("service").id
    assert len(read(service_id)) == len(services)
    [one] = read(service_id, services[0])
    assert decode(one.direct_counter_entry.table_entry, with_action=False).key == services[0].key
    elsewhere = entry("service", {**dict(services[0].match), "network_id": Exact(101)}, ActionCall("dnat", (1, 1)))
    with pytest.raises(grpc.RpcError) as caught:
        read(service_id, elsewhere)
    assert _read_codes(caught.value) == [rpc_code.NOT_FOUND]

    def write_counter(kind: int, key: Entry, data: bool = False) -> int:
        req = p4r.WriteRequest(device_id=1, election_id=p4r.Uint128(low=1))
        dc = req.updates.add(type=kind).entity.direct_counter_entry
        dc.table_entry.CopyFrom(encode(key))
        dc.table_entry.ClearField("action")
        if data:
            dc.data.packet_count = 5
        return _write_code(stub, req)

    assert write_counter(p4r.Update.INSERT, services[0]) == rpc_code.INVALID_ARGUMENT
    assert write_counter(p4r.Update.DELETE, services[0]) == rpc_code.INVALID_ARGUMENT
    assert write_counter(p4r.Update.MODIFY, elsewhere) == rpc_code.NOT_FOUND
    assert write_counter(p4r.Update.MODIFY, services[0]) == rpc_code.OK  # no data: nothing to change
    assert write_counter(p4r.Update.MODIFY, services[0], data=True) == rpc_code.UNIMPLEMENTED
    # An initial counter value on a table entry cannot be honoured either; zero can.
    req = p4r.WriteRequest(device_id=1, election_id=p4r.Uint128(low=1))
    update = req.updates.add(type=p4r.Update.MODIFY)
    update.entity.table_entry.CopyFrom(encode(services[0]))
    update.entity.table_entry.counter_data.SetInParent()
    stub.Write(req)
    update.entity.table_entry.counter_data.packet_count = 3
    with pytest.raises(grpc.RpcError) as caught:
        stub.Write(req)
    error = _write_error(caught.value, 1)
    assert isinstance(error, WriteError) and [e.code for e in error.errors] == [rpc_code.UNIMPLEMENTED]
    with pytest.raises(grpc.RpcError) as caught:
        read(client.pipeline.table("route").id)
    assert _read_codes(caught.value) == [rpc_code.INVALID_ARGUMENT]
    # counter_data on a table without a direct counter is refused.
    req = p4r.WriteRequest(device_id=1, election_id=p4r.Uint128(low=1))
    update = req.updates.add(type=p4r.Update.INSERT)
    update.entity.table_entry.CopyFrom(encode(route(1)))
    update.entity.table_entry.counter_data.packet_count = 1
    with pytest.raises(grpc.RpcError) as refused:
        stub.Write(req)
    error = _write_error(refused.value, 1)
    assert isinstance(error, WriteError) and [e.code for e in error.errors] == [rpc_code.INVALID_ARGUMENT]
    # So is an idle timeout: no table supports one.
    update.entity.table_entry.ClearField("counter_data")
    update.entity.table_entry.idle_timeout_ns = 10**9
    with pytest.raises(grpc.RpcError) as refused:
        stub.Write(req)
    error = _write_error(refused.value, 1)
    assert isinstance(error, WriteError) and [e.code for e in error.errors] == [rpc_code.INVALID_ARGUMENT]
    client.close()


@netns
def test_default_entries_are_const_read_only_on_request(env: Env) -> None:
    env.node("n1")
    client = P4RuntimeClient(env.targets["n1"].address)
    assert client.connect()
    client.set_pipeline()
    client.write([(INSERT, route(0))])
    stub, route_id = client._stub(), client.pipeline.table("route").id
    no_action = client.pipeline.action("NoAction").id
    info = next(t for t in p4info().tables if t.preamble.id == route_id)
    assert info.const_default_action_id == no_action

    req = p4r.ReadRequest(device_id=1)
    te = req.entities.add().table_entry
    te.table_id, te.is_default_action = route_id, True
    [default] = [e.table_entry for r in stub.Read(req) for e in r.entities]
    assert default.is_default_action and default.is_const and not default.match
    assert default.action.action.action_id == no_action
    assert [e.key for e in client.read("route")] == [route(0).key]  # wildcard reads leave it out

    def write(kind: int, with_match: bool = False) -> int:
        w = p4r.WriteRequest(device_id=1, election_id=p4r.Uint128(low=1))
        u = w.updates.add(type=kind)
        u.entity.table_entry.table_id, u.entity.table_entry.is_default_action = route_id, True
        u.entity.table_entry.action.action.action_id = client.pipeline.action("drop").id
        if with_match:
            u.entity.table_entry.match.add(field_id=1).exact.value = b"\x01"
        return _write_code(stub, w)

    assert write(p4r.Update.MODIFY) == rpc_code.PERMISSION_DENIED
    assert write(p4r.Update.INSERT) == rpc_code.INVALID_ARGUMENT
    assert write(p4r.Update.DELETE) == rpc_code.INVALID_ARGUMENT
    assert write(p4r.Update.MODIFY, with_match=True) == rpc_code.INVALID_ARGUMENT
    client.close()


@netns
def test_write_fields_beyond_the_key_as_the_spec_says(env: Env) -> None:
    # Spec 9.1 / 9.1.2: INSERT needs an action, a MODIFY without one changes
    # nothing, DELETE ignores everything but the key, is_const is refused, and
    # NoAction is only a default action.
    env.node("n1")
    client = P4RuntimeClient(env.targets["n1"].address)
    assert client.connect()
    client.set_pipeline()
    stub = client._stub()

    def write(kind: int, e: Entry, edit=lambda te: None) -> int:  # type: ignore[no-untyped-def]
        req = p4r.WriteRequest(device_id=1, election_id=p4r.Uint128(low=1))
        update = req.updates.add(type=kind)
        update.entity.table_entry.CopyFrom(encode(e))
        edit(update.entity.table_entry)
        return _write_code(stub, req)

    tunnel = entry("route", {"network_id": Exact(100), "dst": prefix("10.2.0.1/32")},
                   ActionCall("to_tunnel", (ip("10.254.0.9"),)))
    assert write(p4r.Update.INSERT, tunnel, lambda te: te.ClearField("action")) == rpc_code.INVALID_ARGUMENT
    assert write(p4r.Update.INSERT, tunnel, lambda te: setattr(te, "is_const", True)) == rpc_code.INVALID_ARGUMENT
    no_action = client.pipeline.action("NoAction").id
    assert write(p4r.Update.INSERT, tunnel,
                 lambda te: setattr(te.action.action, "action_id", no_action)) == rpc_code.PERMISSION_DENIED
    assert write(p4r.Update.INSERT, tunnel) == rpc_code.OK
    assert write(p4r.Update.MODIFY, tunnel, lambda te: te.ClearField("action")) == rpc_code.OK
    assert client.read("route") == [tunnel]  # unchanged

    def nonsense(te: p4r.TableEntry) -> None:
        te.action.action.action_id = 12345
        te.counter_data.packet_count = 7
    assert write(p4r.Update.DELETE, tunnel, nonsense) == rpc_code.OK
    assert client.read("route") == []
    client.close()


@netns
def test_packet_out_is_answered_with_a_stream_error(env: Env) -> None:
    # Spec "Stream Error Reporting": no packet I/O here, so a PacketOut comes back in a StreamError.
    env.node("n1")
    client = P4RuntimeClient(env.targets["n1"].address)
    assert client.connect()
    msg = p4r.StreamMessageRequest()
    msg.packet.payload = b"mnd-probe"
    client._outbox.put(msg)
    error = client._arbitration.get(timeout=5)
    assert isinstance(error, p4r.StreamError)
    assert error.canonical_code == rpc_code.UNIMPLEMENTED and error.packet_out.packet_out.payload == b"mnd-probe"
    assert client.primary  # the stream stays open
    client.close()
