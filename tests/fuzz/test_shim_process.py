"""The installed CNI plugin exec'd with generated stdin and environment.

Each case is one exec of the script `multinet install-cni` wrote, with a
fresh interpreter, so nothing the test imported is warm in it. Against an
unreachable agent and against a live one: every answer is spec-shaped
(spec 2 exit codes, spec 5 results and errors), no traceback, no hang, and
the agent's records follow what it answered.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client

from tests.fuzz.conftest import LiveAgent, live_agent
from tests.support import cni_fuzz as gen
from tests.support.fuzz import TALLY

pytestmark = [pytest.mark.cluster, pytest.mark.netns]
UNREACHABLE = ["/nonexistent/fz-agent.sock", "/etc/hostname", "/", "/" + "x" * 120]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.function_scoped_fixture])


def run(plugin: Path, env: Mapping[str, str | bytes], stdin: bytes) -> tuple[int, Any, str]:
    proc = subprocess.run([str(plugin)], input=stdin, env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, timeout=60)
    stderr = proc.stderr.decode(errors="replace")
    try:
        out = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except ValueError:
        pytest.fail(f"stdout is not one JSON document: {proc.stdout[:500]!r} (stderr {stderr[-2000:]})")
    return proc.returncode, out, stderr


def text_env(env: Mapping[str, str | bytes]) -> dict[str, str]:
    """The environment as the shim reads it (os.environ decodes bytes with surrogateescape)."""
    return {k: os.fsdecode(v) for k, v in env.items()}


def check(code: int, out: Any, stderr: str, env: Mapping[str, str]) -> None:
    assert "Traceback" not in stderr, stderr
    problems = gen.check_answer(code, out, env.get("CNI_COMMAND", ""))
    assert not problems, (problems, out, stderr)


def mixed_env(pools: gen.Pools, socket: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, str | bytes]]:
    """A generated environment whose values are text or raw bytes. The socket
    variable is always set: the default path could be a real node's agent."""
    as_bytes: st.SearchStrategy[str | bytes] = gen.env_bytes
    return st.tuples(pools.env(), socket).flatmap(
        lambda pair: st.fixed_dictionaries({
            **{k: st.just(v) | as_bytes if k != "CNI_COMMAND" else st.just(v) for k, v in pair[0].items()},
            "MULTINET_CNI_SOCKET": st.just(pair[1])}))


NO_PODS = gen.Pools(("/var/run/netns/fz-never-made",), (), "default")


def cases(pools: gen.Pools, socket: str,
          sockets: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[dict[str, str | bytes], bytes]]:
    """Well-formed invocations (they reach the agent's work), some with an
    arbitrary config, and arbitrary ones."""
    env = pools.sensible_env().map(lambda e: {**e, "MULTINET_CNI_SOCKET": socket})
    sensible = st.tuples(env, gen.sensible_configs().map(lambda c: json.dumps(c).encode()))
    odd_config = st.tuples(env, gen.configs().map(lambda c: json.dumps(c).encode()))
    return st.one_of(sensible, sensible, odd_config, st.tuples(mixed_env(pools, sockets), gen.stdins(sockets)),
                     st.tuples(mixed_env(pools, sockets), gen.stdins(sockets)))


@SETTINGS
@given(case=cases(NO_PODS, UNREACHABLE[0], st.sampled_from(UNREACHABLE)))
def test_generated_invocations_without_an_agent(plugin: Path, case: tuple[dict[str, str | bytes], bytes]) -> None:
    env, stdin = case
    code, out, stderr = run(plugin, env, stdin)
    TALLY.count("shim (no agent)", f"exit {code}" + (f" code {out.get('code')}" if code else ""))
    check(code, out, stderr, text_env(env))
    command = text_env(env).get("CNI_COMMAND")
    if code == 0 and command not in ("VERSION", "DEL"):
        pytest.fail(f"{command} succeeded with no agent to do it: {out!r}")


@pytest.fixture(scope="module")
def agent(api: client.ApiClient, crds: list[str], kubeconfig: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAgent]:
    with live_agent(api, kubeconfig, tmp_path_factory.mktemp("shim-agent")) as live:
        yield live
        assert "Exception occurred during processing" not in live.log(), live.log()[-4000:]


def reached(env: Mapping[str, str], stdin: bytes, live: str) -> bool:
    """Whether the shim hands this invocation to the live agent (cni.shim.run)."""
    try:
        config = json.loads(stdin)
    except (ValueError, RecursionError):
        return False
    socket = config.get("socket") if isinstance(config, dict) else None
    return (socket or env.get("MULTINET_CNI_SOCKET")) == live


def test_generated_invocations_against_a_live_agent(plugin: Path, agent: LiveAgent) -> None:
    @SETTINGS
    @given(case=cases(agent.pools, agent.socket, st.sampled_from([agent.socket] * 4 + UNREACHABLE)))
    def one(case: tuple[dict[str, str | bytes], bytes]) -> None:
        env, stdin = case
        code, out, stderr = run(plugin, env, stdin)
        seen = text_env(env)
        reply = f"exit {code}" + (f" code {out.get('code')}" if code else "")
        TALLY.count("shim (live agent)", f"{seen.get('CNI_COMMAND', '')[:8]} {reply}")
        check(code, out, stderr, seen)
        if reached(seen, stdin, agent.socket):
            problems = agent.model.observe(seen, stdin, code)
            if code == 0 and seen.get("CNI_COMMAND") == "ADD":
                problems += gen.check_result(seen, out)
            assert not problems, problems
        assert agent.alive(), agent.log()[-4000:]
        problems = agent.model.check()
        assert not problems, problems

    one()
