"""The node's P4Runtime client when the target goes away or runs full, as in
production: a real `multinet ipu` process, the agent's datapath client and
sync loop, real gRPC over TCP.

The loop's periodic resync is set far beyond each test, and nothing marks it
dirty but the test: what repairs a restarted target is the client noticing
its stream end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest
from prometheus_client import REGISTRY

from datapath.client.backoff import Backoff
from datapath.client.datapath import Key, P4RuntimeDatapath, port_entries
from datapath.client.full import TableFull
from datapath.client.p4rt import P4RuntimeClient, WriteError
from datapath.client.sync import SyncLoop
from datapath.entries import ActionCall, Entry, Exact, entry, prefix
from datapath.pipeline import pipeline
from tests.datapath.conftest import PREFIX, Env, free_port, netns
from tests.support.metrics import scrape, value
from tests.support.testbed import start_target
from tests.support.wait import wait_for

NEVER = 3600.0  # the periodic resync: not within any test


def route(n: int, net: int = 100) -> Entry:
    return entry("route", {"network_id": Exact(net), "dst": prefix(f"10.2.{n // 250}.{n % 250 + 1}/32")},
                 ActionCall("drop"))


def held(address: str, reader: P4RuntimeClient | None = None) -> dict[Key, Entry] | None:
    """What the target holds, read over P4Runtime by a client of its own; None while it does not answer."""
    reader = reader or P4RuntimeClient(address)
    try:
        reader.open(timeout=2)
        return {e.key: e for e in reader.read()}
    except (grpc.RpcError, grpc.FutureTimeoutError):
        return None  # down, or up without a pipeline yet (FAILED_PRECONDITION)
    finally:
        reader.close()


@contextmanager
def running(loop: SyncLoop) -> Iterator[SyncLoop]:
    loop.start()
    try:
        yield loop
    finally:
        loop.stop()


def programmed_node(env: Env, routes: int) -> tuple[P4RuntimeDatapath, list[Entry], dict[Key, Entry]]:
    """Node n1 with one pod attached and `routes` compiled entries wanted
    beside it; the datapath, the compiled entries and the whole desired state."""
    env.node("n1")
    dp = env.datapath("n1")
    pod = env.pod("n1", "a", 100, "10.1.0.2/24")
    wanted = [route(i) for i in range(routes)]
    return dp, wanted, {e.key: e for e in [*port_entries(pod.attachment), *wanted]}


def stream_losses() -> float:
    return REGISTRY.get_sample_value("multinet_p4runtime_stream_lost_total") or 0.0


@netns
def test_a_killed_target_is_reprogrammed_as_soon_as_it_answers_again(env: Env) -> None:
    dp, wanted, want = programmed_node(env, 300)
    target = env.targets["n1"]
    losses = stream_losses()
    with running(SyncLoop(dp, lambda: wanted, min_interval=0.05, resync_interval=NEVER)) as loop:
        wait_for("the first round", lambda: held(target.address) == want)
        os.kill(target.process.pid, signal.SIGKILL)
        target.process.wait()
        port = int(target.address.rsplit(":", 1)[1])
        env.targets["n1"] = target = start_target(target.node, port, PREFIX, str(env.logs / "n1-again.log"),
                                                  sys.executable, metrics_port=free_port())
        wait_for("the restarted target to hold the desired state again",
                 lambda: held(target.address) == want, timeout=120)
        assert dp.sessions == 2, "one reconnect"
        assert stream_losses() >= losses + 1
        assert loop.last_error is None
    # Realized, not only stored: the pod's host route and the compiled drops are in the IPU's kernel.
    routes = subprocess.run(["ip", "-n", target.node.ipu_ns, "route", "show", "table", "all"],
                            capture_output=True, text=True, check=True).stdout
    assert "10.1.0.2 dev" in routes and "blackhole 10.2.1.50" in routes, routes


@netns
def test_a_broken_connection_without_a_restart_rewrites_nothing(env: Env) -> None:
    dp, wanted, want = programmed_node(env, 300)
    target = env.targets["n1"]
    assert target.metrics_url is not None
    with running(SyncLoop(dp, lambda: wanted, min_interval=0.05, resync_interval=NEVER)) as loop:
        wait_for("the first round", lambda: held(target.address) == want)
        before = scrape(target.metrics_url)
        sessions = dp.sessions
        # Abort the TCP connection between client and target (both ends, as a
        # broken path or a middlebox reset does); the target keeps running.
        port = target.address.rsplit(":", 1)[1]
        subprocess.run(["ss", "-K", "-t", "state", "established", f"( sport = :{port} or dport = :{port} )"],
                       check=True, capture_output=True)
        wait_for("the client to open a new session", lambda: dp.sessions > sessions and dp.client.primary
                 and not dp.client.stream_closed.is_set())
        assert held(target.address) == want
        after = scrape(target.metrics_url)
        assert target.process.poll() is None
        assert loop.last_error is None
    updates = "multinet_ipu_p4runtime_updates_total"
    assert value(after, updates) == value(before, updates), "entries deleted and written again"
    assert value(after, updates, type="DELETE") == 0


@netns
def test_a_full_table_is_reported_once_and_the_same_state_is_not_retried_until_it_changes(env: Env) -> None:
    env.sizes = {"route": 4}
    env.node("n1")
    target = env.targets["n1"]
    assert target.metrics_url is not None
    small = pipeline(env.sizes)
    dp = P4RuntimeDatapath(P4RuntimeClient(target.address, pipeline=small))
    env.datapaths["n1"] = dp
    wanted = [route(i) for i in range(6)]
    reports: list[TableFull] = []
    loop = SyncLoop(dp, lambda: list(wanted), min_interval=0.05, resync_interval=NEVER, on_full=reports.append,
                    refused_retry=Backoff(NEVER, NEVER))  # only a change retries

    def refused() -> float:
        return value(scrape(target.metrics_url or ""), "multinet_ipu_p4runtime_write_errors_total",
                     code="RESOURCE_EXHAUSTED")
    with running(loop):
        wait_for("a report of the full table", lambda: reports)
        [full] = reports
        assert (full.tables, full.networks, len(full.refused)) == (("route",), (100,), 2)
        have = held(target.address, P4RuntimeClient(target.address, pipeline=small))
        assert have is not None and len(have) == 4 and set(have.values()) < set(wanted)  # nothing lost
        assert refused() == 2
        for wakes in (1, 2, 3):  # informer events with nothing changed: no write, no report
            loop.mark_dirty()
            wait_for("the loop to hold the refused state back", lambda: loop.held >= wakes)
        assert refused() == 2 and len(reports) == 1
        wanted[:] = [route(0), route(1), route(2), route(4)]  # fits: the change is tried at once
        loop.mark_dirty()
        wait_for("the changed state on the target", lambda: held(
            target.address, P4RuntimeClient(target.address, pipeline=small)) == {e.key: e for e in wanted})
        wait_for("the loop to see the tables take everything", lambda: loop.full is None)
        assert loop.last_error is None and len(reports) == 1


@netns
def test_a_port_is_attached_while_other_entries_stay_refused_and_refused_when_its_own_are(env: Env) -> None:
    env.sizes = {"route": 4, "port": 1}
    node = env.node("n1")
    small = pipeline(env.sizes)
    dp = P4RuntimeDatapath(P4RuntimeClient(env.targets["n1"].address, pipeline=small))
    env.datapaths["n1"] = dp
    dp.reconnect()
    with pytest.raises(WriteError):
        dp.replace_state([route(i) for i in range(6)])  # the compiled state overflows the route table
    # An address-less port needs only a port entry: its ADD must not fail for the routes.
    first = env.testbed.add_pod(node, "l2a", 300, ())
    dp.attach(first.attachment)
    have = held(env.targets["n1"].address, P4RuntimeClient(env.targets["n1"].address, pipeline=small))
    assert have is not None and all(e.key in have for e in port_entries(first.attachment))
    second = env.testbed.add_pod(node, "l2b", 300, ())
    with pytest.raises(WriteError) as refused:
        dp.attach(second.attachment)  # the port table is full now: this one's own entry is refused
    assert [e.table for e in refused.value.refused()] == ["port", "route", "route"]
