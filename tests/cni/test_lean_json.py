"""cni.lean_json is json's loads and dumps: the same values, the same errors;
and the installed plugin starts without importing json (nor re)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cni import lean_json
from cni.install import install

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
# Text that is JSON or nearly: documents cut short, spliced or padded.
json_like = values.map(json.dumps).flatmap(
    lambda doc: st.sampled_from([doc, doc[:-1], doc[1:], f" \n{doc}\t", f"{doc} x", f"\ufeff{doc}", doc * 2]))


def outcome(fn: Any, arg: Any) -> tuple[str, str]:
    """What a call gives, comparable across NaN: the value's JSON, or the error."""
    try:
        return "value", json.dumps(fn(arg), allow_nan=True)
    except Exception as err:  # the comparison is the point: any kind must match
        return type(err).__name__, str(err)


@given(values)
def test_dumps_is_json_dumps(value: Any) -> None:
    assert lean_json.dumps(value) == json.dumps(value)


@given(json_like | st.text())
def test_loads_of_text_is_json_loads(doc: str) -> None:
    assert outcome(lean_json.loads, doc) == outcome(json.loads, doc)


@given(json_like.map(lambda d: d.encode("utf-8")) | json_like.map(lambda d: d.encode("utf-16")) | st.binary())
def test_loads_of_bytes_is_json_loads(doc: bytes) -> None:
    assert outcome(lean_json.loads, doc) == outcome(json.loads, doc)


@pytest.mark.parametrize("doc", ["NaN", "[Infinity, -Infinity]", '{"a": 1e400}', "[" * 100_000, "1" * 5000])
def test_loads_of_edge_cases_is_json_loads(doc: str) -> None:
    assert outcome(lean_json.loads, doc) == outcome(json.loads, doc)


def test_loads_gives_json_constants() -> None:
    assert math.isnan(lean_json.loads("NaN"))
    assert lean_json.loads("[Infinity, -Infinity]") == [math.inf, -math.inf]


@pytest.mark.parametrize("value", [{1: "a", None: 2}, [float("inf"), float("nan")], {"a": object()}, b"bytes"])
def test_dumps_of_edge_cases_is_json_dumps(value: Any) -> None:
    assert outcome(lean_json.dumps, value) == outcome(json.dumps, value)


def test_dumps_refuses_a_circular_value_again_and_again() -> None:
    loop: list[Any] = []
    loop.append(loop)
    for _ in range(2):
        with pytest.raises(ValueError, match="Circular reference"):
            lean_json.dumps(loop)
    assert lean_json.dumps([[], []]) == "[[], []]"


@pytest.mark.parametrize(("command", "stdin"), [
    ("VERSION", b'{"cniVersion": "1.0.0"}'),
    ("ADD", b'{"cniVersion": "1.0.0", "name": "multinet", "type": "multinet-cni", "socket": "/nonexistent"}'),
])
def test_the_installed_plugin_imports_neither_json_nor_re(tmp_path: Path, command: str, stdin: bytes) -> None:
    """What the plugin imports is what its start costs (python -X importtime)."""
    plugin = install(tmp_path)
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": "c0ffee",
           "CNI_NETNS": "/proc/1/ns/net", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}
    proc = subprocess.run([sys.executable, "-SE", "-X", "importtime", str(plugin)], input=stdin, env=env,
                          capture_output=True, timeout=60)
    assert proc.stdout.strip(), proc.stderr  # it answered (a result or an error document)
    imported = {line.split("|")[-1].strip() for line in proc.stderr.decode().splitlines()
                if line.startswith("import time:")}
    assert "cni.shim" in imported
    assert not imported & {"json", "json.decoder", "re", "enum", "typing", "collections"}, sorted(imported)
