"""The attachment record: typed, frozen, and the same after a JSON round trip."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.record import AttachmentRecord, Eth0Mode, OwnedLink, Phase, PlannedInterface, PodRef
from agent.store import StateStore
from datapath.ports import NetworkId, PortAttachment

names = st.text(alphabet="abcdef0123456789-", min_size=1, max_size=12)
plans = st.builds(
    PlannedInterface, name=names, network=names, attachment=st.none() | names,
    network_id=st.integers(1, 16_000_000), kind=st.sampled_from(["veth", "macvlan"]), peer=names,
    mac=st.just("02:00:00:00:00:01"), mtu=st.integers(576, 9000),
    ips=st.tuples(st.just("10.1.0.5/24")), gateways=st.tuples(), routes=st.tuples(st.just("10.2.0.0/16")),
    default=st.booleans())
ports = st.builds(
    PortAttachment, pod_uid=names, namespace=names, pod_name=names, network=names,
    network_id=st.integers(1, 100).map(NetworkId), interface=names, representor=names,
    ips=st.tuples(st.just("10.1.0.5/24")), mac=st.just("02:00:00:00:00:01"), mtu=st.just(1500))
records = st.builds(
    AttachmentRecord, network=names, container_id=names, ifname=names, netns=names,
    pod=st.builds(PodRef, names, names, names), mode=st.sampled_from(list(Eth0Mode)),
    group=st.integers(1, 2**31 - 2), phase=st.sampled_from(list(Phase)),
    links=st.lists(st.builds(OwnedLink, st.none() | names, names, st.none() | st.just("02:00:00:00:00:02")),
                   max_size=3).map(tuple),
    plans=st.lists(plans, max_size=2).map(tuple), args=st.just("K8S_POD_NAME=a"),
    path=st.tuples(st.just("/opt/cni/bin")), default_ip=st.none() | st.just("10.244.0.7"),
    delegate=st.none() | st.just("/etc/cni/net.d/10-bridge.conflist"),
    result=st.none() | st.just({"interfaces": [], "ips": [], "routes": [], "dns": {}}),
    ports=st.lists(ports, max_size=2).map(tuple))


@given(records)
def test_json_round_trip(record: AttachmentRecord) -> None:
    assert AttachmentRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_frozen() -> None:
    record = AttachmentRecord("n", "c", "eth0", "/proc/1/ns/net", PodRef("a", "b"), Eth0Mode.ROUTED, 7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.phase = Phase.READY  # type: ignore[misc]


@pytest.mark.parametrize(("keys", "mode"), [
    ({"delegate": "/etc/cni/net.d/10-bridge.conflist"}, Eth0Mode.DELEGATED),
    ({"defaultIP": "10.244.0.9"}, Eth0Mode.ROUTED),
    ({}, Eth0Mode.NONE),
])
def test_a_record_written_before_modes_existed_keeps_its_mode(keys: dict[str, str], mode: Eth0Mode) -> None:
    old = {"network": "multinet", "containerID": "c1", "ifname": "eth0", "netns": "/var/run/netns/p",
           "pod": {"namespace": "a", "name": "b", "uid": "u"}, "phase": "ready", "group": 5, "links": [],
           "plans": [], "args": "", "path": [], "runtimeConfig": {}, **keys}
    assert AttachmentRecord.from_json(old).mode == mode


def test_store_skips_foreign_files_and_round_trips(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    record = AttachmentRecord("n", "c", "eth0", "/proc/1/ns/net", PodRef("a", "b"), Eth0Mode.ROUTED, 7,
                              default_ip="10.244.0.2")
    store.write(record)
    (tmp_path / "foreign.json").write_text('{"not": "a record"}')
    (tmp_path / "torn.json").write_text('{"network": ')
    assert store.all() == [record]
    assert store.read("n", "c", "eth0") == record
    store.delete("n", "c", "eth0")
    assert store.read("n", "c", "eth0") is None


def test_a_record_torn_by_a_machine_crash_reads_as_absent(tmp_path: Path) -> None:
    """Records are not fsynced: a kernel crash may leave one empty or cut short
    under its own name (with the namespaces it guarded gone); DEL and ADD then
    see no record instead of failing on it."""
    store = StateStore(tmp_path)
    record = AttachmentRecord("n", "c", "eth0", "/proc/1/ns/net", PodRef("a", "b"), Eth0Mode.ROUTED, 7)
    store.write(record)
    (path,) = tmp_path.glob("*.json")
    whole = path.read_text()
    for torn in ("", whole[:20], whole[:-1]):
        path.write_text(torn)
        assert store.read("n", "c", "eth0") is None
        assert store.all() == []
