"""A peer that hangs without closing its connection is noticed by the other end
of the P4Runtime channel (HTTP/2 keepalive): the target lets a hung primary's
mastership go, and a client's stream to a hung target ends so it reconnects."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from finsy.proto import rpc_code

from datapath import keepalive
from datapath.client.p4rt import P4RuntimeClient
from tests.datapath.conftest import Env, netns
from tests.support.wait import wait_for

# A ping every PING_EVERY_MS, unanswered for ANSWER_WITHIN_MS: a generous bound
# for a loaded machine, not a measure.
NOTICED_WITHIN = 6 * (keepalive.PING_EVERY_MS + keepalive.ANSWER_WITHIN_MS) / 1000

PRIMARY = """
import sys, time
from datapath.client.p4rt import P4RuntimeClient
client = P4RuntimeClient(sys.argv[1], election_id=10)
assert client.connect()
print("primary", flush=True)
time.sleep(600)
"""


@netns
def test_a_hung_primary_loses_its_mastership(env: Env) -> None:
    env.node("n1")
    address = env.targets["n1"].address
    primary = subprocess.Popen([sys.executable, "-c", PRIMARY, address], stdout=subprocess.PIPE, text=True)
    backup = P4RuntimeClient(address, election_id=5)
    try:
        assert primary.stdout is not None and primary.stdout.readline().strip() == "primary"
        assert not backup.connect()
        os.kill(primary.pid, signal.SIGSTOP)  # hung: its connection stays open, it answers nothing
        # The target's pings go unanswered: it drops the connection, the primary's
        # stream ends, and the backup hears that no primary is left (NOT_FOUND).
        wait_for("the backup to hear that no primary is left",
                 lambda: backup.last_arbitration is not None
                 and backup.last_arbitration.status.code == rpc_code.NOT_FOUND, NOTICED_WITHIN)
        assert backup.arbitrate(10)  # and may take over
    finally:
        backup.close()
        primary.kill()  # SIGKILL ends a stopped process too
        primary.wait()


@netns
def test_a_client_notices_a_hung_target(env: Env) -> None:
    node = env.node("n1")
    target = env.targets["n1"]
    client = P4RuntimeClient(target.address, election_id=1)
    try:
        assert client.connect()
        os.kill(target.process.pid, signal.SIGSTOP)
        try:
            # Its pings go unanswered: the stream ends as a lost one (its listeners
            # would reconnect), rather than waiting on the dead target forever.
            wait_for(f"the stream to the hung target on {node.name} to end", client.stream_closed.is_set,
                     NOTICED_WITHIN)
        finally:
            os.kill(target.process.pid, signal.SIGCONT)
    finally:
        client.close()
