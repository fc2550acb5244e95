"""The plugin as a runtime runs it: `multinet install-cni`'s script, exec'd as
a separate process, with nothing imported beforehand in its interpreter.

An in-process test shares the test's interpreter (json already imported,
modules warm) and once hid a crash on malformed stdin; these do not.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cni import spec
from cni.install import install

ENV = {"CNI_CONTAINERID": "c0ffee", "CNI_NETNS": "/proc/1/ns/net", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}
ERROR_CODES = {v for k, v in vars(spec.Code).items() if k.isupper()}


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install(tmp_path_factory.mktemp("bin"))


def run(plugin: Path, env: dict[str, str], stdin: bytes) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run([str(plugin)], input=stdin, env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, timeout=60)
    out = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, out, proc.stderr.decode(errors="replace")


@pytest.mark.parametrize("stdin", [b"{not json", b"", b"\xff\xfe", b"[" * 100000, b'{"cniVersion": "1.0.0"'])
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_malformed_stdin_is_code_6(plugin: Path, command: str, stdin: bytes) -> None:
    code, out, stderr = run(plugin, {**ENV, "CNI_COMMAND": command}, stdin)
    assert "Traceback" not in stderr, stderr
    assert code == 1, (out, stderr)
    assert out["code"] == spec.Code.DECODING_FAILURE, out
    assert isinstance(out["msg"], str) and out["msg"]


def test_version_answers_without_an_agent(plugin: Path) -> None:
    code, out, stderr = run(plugin, {"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "1.0.0"}')
    assert code == 0, stderr
    assert out["cniVersion"] == "1.0.0"
    assert "1.1.0" in out["supportedVersions"]


@settings(max_examples=60, deadline=None)
@given(stdin=st.binary(max_size=120),
       command=st.sampled_from(["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION", "", "FOO"]))
def test_generated_input_gets_a_spec_shaped_answer(plugin: Path, stdin: bytes, command: str) -> None:
    code, out, stderr = run(plugin, {**ENV, "CNI_COMMAND": command,
                                     "MULTINET_CNI_SOCKET": "/nonexistent/multinet-fuzz.sock"}, stdin)
    assert "Traceback" not in stderr, stderr
    if code == 0:
        assert out == {} or "cniVersion" in out
        return
    assert code == 1
    assert set(out) <= {"cniVersion", "code", "msg", "details"}
    assert out["code"] in ERROR_CODES


def test_del_waits_for_a_killed_agent_but_not_for_an_absent_one(plugin: Path, tmp_path: Path) -> None:
    """A DEL the runtime takes as done lets it remove the sandbox; while a killed
    agent (its socket left, nobody listening) still holds the pod's record, that
    DEL must fail with code 11 so the runtime retries once the agent is back."""
    import socket

    left = tmp_path / "agent.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(left))  # the socket file stays when its listener is gone
    conf = {"cniVersion": "1.1.0", "name": "multinet", "type": "multinet-cni"}
    env = {**ENV, "CNI_COMMAND": "DEL"}
    code, out, stderr = run(plugin, env, json.dumps({**conf, "socket": str(left)}).encode())
    assert code == 1 and out["code"] == spec.Code.TRY_AGAIN_LATER, (out, stderr)
    code, out, stderr = run(plugin, env, json.dumps({**conf, "socket": str(tmp_path / "none.sock")}).encode())
    assert code == 0 and out == {}, (out, stderr)
