"""Property test: arbitrary stdin and environment never crash the shim or the
agent's parsers; every failure is a spec-shaped error."""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cni import shim, spec
from agent.server import decode_request

KEYS = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"]
COMMANDS = st.sampled_from(list(spec.COMMANDS) + ["", "add", "FOO"])
text = st.text(max_size=40)
env_strategy = st.dictionaries(st.sampled_from(KEYS), text, max_size=6).flatmap(
    lambda env: COMMANDS.map(lambda c: {**env, "CNI_COMMAND": c})
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
config_like = st.fixed_dictionaries(
    {},
    optional={
        "cniVersion": st.sampled_from(["0.4.0", "1.0.0", "1.1.0", "0.3.1", ""]) | json_values,
        "cniVersions": json_values,
        "name": st.sampled_from(["net", "a.b-c"]) | json_values,
        "type": st.just("multinet-cni") | json_values,
        "socket": st.just("/nonexistent/multinet-fuzz.sock"),
        "prevResult": json_values,
        "cni.dev/valid-attachments": json_values,
        "timeoutSeconds": json_values,
        "ipam": json_values,
    },
).map(lambda d: {**d, "socket": "/nonexistent/multinet-fuzz.sock"})
stdin_strategy = st.one_of(st.binary(max_size=200), config_like.map(lambda d: json.dumps(d).encode()))

ERROR_CODES = {v for k, v in vars(spec.Code).items() if k.isupper()}


def assert_spec_shaped(code: int, out: dict[str, Any]) -> None:
    if code == 0:
        assert out == {} or "cniVersion" in out
        return
    assert set(out) <= {"cniVersion", "code", "msg", "details"}
    assert out["code"] in ERROR_CODES
    assert isinstance(out["msg"], str) and out["msg"]
    # The configuration's version (spec 5, Error), which may be one we do not speak.
    assert isinstance(out["cniVersion"], str) and out["cniVersion"].count(".") == 2


@settings(max_examples=200, deadline=None)
@given(env=env_strategy, stdin=stdin_strategy)
def test_shim_never_crashes(env: dict[str, str], stdin: bytes) -> None:
    buf = io.StringIO()
    code = shim.run(env, stdin, buf)
    text_out = buf.getvalue()
    out = json.loads(text_out) if text_out.strip() else {}
    assert_spec_shaped(code, out)


@settings(max_examples=200, deadline=None)
@given(env=env_strategy, stdin=stdin_strategy)
def test_parser_raises_only_cni_errors(env: dict[str, str], stdin: bytes) -> None:
    try:
        request = spec.parse_request(env, stdin)
    except spec.CniError as err:
        assert err.code in ERROR_CODES and err.msg
        return
    # VERSION echoes the caller's version (spec 5); every other verb speaks one of ours.
    assert request.command == "VERSION" or request.version in spec.SUPPORTED_VERSIONS
    assert request.command in spec.COMMANDS


@settings(max_examples=200, deadline=None)
@given(raw=st.one_of(st.binary(max_size=100), json_values.map(lambda v: json.dumps(v).encode()),
                     st.fixed_dictionaries({"env": json_values, "stdin": json_values}).map(lambda d: json.dumps(d).encode())))
def test_agent_frame_decoder(raw: bytes) -> None:
    try:
        env, stdin = decode_request(raw)
    except spec.CniError as err:
        assert err.code == spec.Code.DECODING_FAILURE
        return
    assert isinstance(stdin, str) and all(isinstance(v, str) for v in env.values())


def test_deep_nesting_is_a_decoding_error() -> None:
    buf = io.StringIO()
    code = shim.run({"CNI_COMMAND": "ADD"}, b"[" * 100000, buf)
    out = json.loads(buf.getvalue())
    assert code == 1 and out["code"] == 6  # not a RecursionError traceback
