"""Every malformed field gives the spec's error code and a message naming it.

Runs the shim's whole path in-process (`cni.shim.run`) with the agent socket
pointing nowhere: validation happens before any agent round trip, so these
never reach it.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from cni import result as cni_result
from cni import shim, spec

NOWHERE = "/nonexistent/multinet-test.sock"
ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c0ffee",
    "CNI_NETNS": "/var/run/netns/mnc-none",
    "CNI_IFNAME": "eth0",
    "CNI_ARGS": "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
    "CNI_PATH": "/usr/lib/cni",
}


def conf(version: str = "1.1.0", **extra: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "multinet", "type": "multinet-cni", "socket": NOWHERE, **extra}


def invoke(env: dict[str, str], stdin: bytes | dict[str, Any]) -> tuple[int, dict[str, Any]]:
    raw = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
    out = io.StringIO()
    code = shim.run(env, raw, out)
    text = out.getvalue()
    return code, json.loads(text) if text.strip() else {}


def drop(key: str) -> dict[str, Any]:
    c = conf()
    del c[key]
    return c


CONFIG_CASES = [
    ("cniVersion-missing", drop("cniVersion"), 1, "cniVersion"),
    ("cniVersion-old", conf("0.3.1"), 1, "0.3.1"),
    ("cniVersion-unknown", conf("9.9.9"), 1, "9.9.9"),
    ("cniVersion-type", conf(version=110), 7, "cniVersion"),  # type: ignore[arg-type]
    ("cniVersions-type", conf(cniVersions="1.1.0"), 7, "cniVersions"),
    ("name-missing", drop("name"), 7, "name"),
    ("name-bad", conf(name="-bad name"), 7, "name"),
    ("type-missing", drop("type"), 7, "type"),
    ("type-empty", conf(type=""), 7, "type"),
    ("ipam", conf(ipam={"type": "host-local"}), 2, "ipam"),
    ("socket-relative", conf(socket="run/x.sock"), 7, "socket"),
    ("timeout-negative", conf(timeoutSeconds=-1), 7, "timeoutSeconds"),
    ("timeout-type", conf(timeoutSeconds="5"), 7, "timeoutSeconds"),
    ("timeout-null", conf(timeoutSeconds=None), 7, "timeoutSeconds"),
    ("prevResult-type", conf(prevResult=[1]), 7, "prevResult"),
    ("prevResult-ip", conf(prevResult={"interfaces": [], "ips": [{"address": "10.0.0.300/24"}]}), 7, "prevResult.ips[0].address"),
    ("prevResult-index", conf(prevResult={"interfaces": [], "ips": [{"address": "10.0.0.3/24", "interface": 2}]}), 7, "prevResult.ips[0].interface"),
]


@pytest.mark.parametrize("case,config,code,field", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_malformed_config_field(case: str, config: dict[str, Any], code: int, field: str) -> None:
    exit_code, out = invoke(ENV, config)
    assert exit_code != 0
    assert out["code"] == code
    assert field in out["msg"]
    assert set(out) <= {"cniVersion", "code", "msg", "details"}


ENV_CASES = [
    ("command-missing", {"CNI_COMMAND": ""}, "CNI_COMMAND"),
    ("command-unknown", {"CNI_COMMAND": "PUT"}, "CNI_COMMAND"),
    ("containerid-missing", {"CNI_CONTAINERID": ""}, "CNI_CONTAINERID"),
    ("containerid-bad", {"CNI_CONTAINERID": "_x/y"}, "CNI_CONTAINERID"),
    ("netns-missing", {"CNI_NETNS": ""}, "CNI_NETNS"),
    ("ifname-missing", {"CNI_IFNAME": ""}, "CNI_IFNAME"),
    ("ifname-long", {"CNI_IFNAME": "x" * 16}, "CNI_IFNAME"),
    ("ifname-dot", {"CNI_IFNAME": ".."}, "CNI_IFNAME"),
    ("ifname-slash", {"CNI_IFNAME": "a/b"}, "CNI_IFNAME"),
    ("ifname-space", {"CNI_IFNAME": "a b"}, "CNI_IFNAME"),
    ("args-pair", {"CNI_ARGS": "K8S_POD_NAME"}, "CNI_ARGS"),
]


@pytest.mark.parametrize("case,override,field", ENV_CASES, ids=[c[0] for c in ENV_CASES])
def test_invalid_environment(case: str, override: dict[str, str], field: str) -> None:
    exit_code, out = invoke({**ENV, **override}, conf())
    assert exit_code != 0
    assert out["code"] == 4
    assert field in out["msg"]


def test_del_needs_no_netns_but_add_does() -> None:
    env = {**ENV, "CNI_NETNS": ""}
    assert invoke({**env, "CNI_COMMAND": "ADD"}, conf())[1]["code"] == 4
    # DEL without a netns is valid (spec 2); with the agent unreachable it succeeds.
    assert invoke({**env, "CNI_COMMAND": "DEL"}, conf()) == (0, {})


@pytest.mark.parametrize("stdin", [b"", b"{", b"\xff\xfe", b"[1, 2]", b"null", b'"text"'])
def test_undecodable_config(stdin: bytes) -> None:
    exit_code, out = invoke(ENV, stdin)
    assert exit_code != 0 and out["code"] == 6


def test_check_requires_prev_result() -> None:
    exit_code, out = invoke({**ENV, "CNI_COMMAND": "CHECK"}, conf())
    assert out["code"] == 7 and "prevResult" in out["msg"]


@pytest.mark.parametrize("command", ["GC", "STATUS"])
@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_new_verbs_need_1_1(command: str, version: str) -> None:
    exit_code, out = invoke({**ENV, "CNI_COMMAND": command}, conf(version))
    assert out["code"] == 1 and command in out["msg"]
    assert out["cniVersion"] == version  # errors answer in the caller's version


def test_gc_needs_cni_path_and_valid_attachment_shape() -> None:
    env = {"CNI_COMMAND": "GC"}
    assert invoke(env, conf())[1]["code"] == 4
    attachments: dict[str, Any] = {"cni.dev/valid-attachments": [{"containerID": 5}]}
    bad = conf(**attachments)
    exit_code, out = invoke({**env, "CNI_PATH": "/usr/lib/cni"}, bad)
    assert out["code"] == 7 and "cni.dev/valid-attachments[0]" in out["msg"]


@pytest.mark.parametrize("asked", ["0.4.0", "1.0.0", "1.1.0", "0.1.0", "2.0.0", "garbage", None])
def test_version(asked: str | None) -> None:
    # Spec 5, Version: cniVersion is the value given on input.
    stdin = json.dumps({"cniVersion": asked}).encode() if asked else b""
    exit_code, out = invoke({"CNI_COMMAND": "VERSION"}, stdin)
    assert exit_code == 0
    assert out["supportedVersions"] == ["0.4.0", "1.0.0", "1.1.0"]
    assert out["cniVersion"] == (asked if asked and asked != "garbage" else "1.1.0")


def test_cni_versions_list_negotiates_highest_common() -> None:
    config = conf()
    del config["cniVersion"]
    config["cniVersions"] = ["0.3.1", "1.0.0", "2.0.0"]
    request = spec.parse_request(ENV, json.dumps(config))
    assert request.version == "1.0.0"


@pytest.mark.parametrize("version", spec.SUPPORTED_VERSIONS)
def test_agent_down(version: str) -> None:
    exit_code, out = invoke(ENV, conf(version))
    assert exit_code != 0 and out["code"] == 11 and NOWHERE in out["msg"]
    assert out["cniVersion"] == version
    assert invoke({**ENV, "CNI_COMMAND": "DEL"}, conf(version)) == (0, {})
    prev = {"cniVersion": version, "interfaces": [], "ips": []}
    assert invoke({**ENV, "CNI_COMMAND": "CHECK"}, conf(version, prevResult=prev))[1]["code"] == 11


def test_status_agent_down() -> None:
    exit_code, out = invoke({"CNI_COMMAND": "STATUS", "CNI_PATH": "/usr/lib/cni"}, conf())
    assert exit_code != 0 and out["code"] == 50


def test_result_rendering_per_version() -> None:
    result = {
        "interfaces": [{"name": "net1", "mac": "02:00:00:00:00:01", "mtu": 1450, "sandbox": "/x"}],
        "ips": [{"address": "10.0.0.5/24", "interface": 0}, {"address": "fd00::5/64", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
        "dns": {},
    }
    v11 = cni_result.render_result(result, "1.1.0")
    assert v11["interfaces"][0]["mtu"] == 1450 and "version" not in v11["ips"][0]
    v10 = cni_result.render_result(result, "1.0.0")
    assert "mtu" not in v10["interfaces"][0] and v10["cniVersion"] == "1.0.0"
    v04 = cni_result.render_result(result, "0.4.0")
    assert [ip["version"] for ip in v04["ips"]] == ["4", "6"]
    # A 0.4.0 result read back as prevResult is the 1.1.0 shape again.
    assert cni_result.normalise_result(v04)["ips"] == result["ips"]


def test_cni_versions_win_over_a_lower_cni_version() -> None:
    # Spec 1, "Version considerations": the highest version both sides speak,
    # from cniVersion and cniVersions together (as libcni reads a config).
    config = conf("1.0.0", cniVersions=["1.0.0", "1.1.0", "2.0.0"])
    assert spec.parse_request(ENV, json.dumps(config)).version == "1.1.0"
    # So STATUS is accepted (and, the agent being down, answers 50, not 1).
    exit_code, out = invoke({"CNI_COMMAND": "STATUS"}, config)
    assert out["code"] == 50 and out["cniVersion"] == "1.1.0"
    # Nothing in common: incompatible version, naming what was offered.
    exit_code, out = invoke(ENV, conf("0.3.1", cniVersions=["0.3.0", "2.0.0"]))
    assert out["code"] == 1 and "0.3.1" in out["msg"]


def test_check_does_not_require_cni_path() -> None:
    # Spec 2, CHECK: CNI_PATH is optional (as for ADD and DEL); the request
    # gets past validation to the agent (down here: code 11, not 4).
    env = {**ENV, "CNI_COMMAND": "CHECK"}
    del env["CNI_PATH"]
    exit_code, out = invoke(env, conf(prevResult={"interfaces": [], "ips": []}))
    assert exit_code != 0 and out["code"] == 11


def test_incompatible_version_error_names_the_config_version() -> None:
    # Spec 5, Error: cniVersion is the value the configuration gave.
    exit_code, out = invoke(ENV, conf("0.3.1"))
    assert exit_code != 0 and out["code"] == 1 and out["cniVersion"] == "0.3.1"


def test_status_agent_silent(tmp_path: Any) -> None:
    # An agent that accepts and never answers: STATUS reports 50 (spec 2,
    # STATUS codes), the other verbs 11 (try again later).
    import socket

    path = str(tmp_path / "silent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    try:
        config = dict(conf(), socket=path, timeoutSeconds=0.2)
        exit_code, out = invoke({"CNI_COMMAND": "STATUS"}, config)
        assert exit_code != 0 and out["code"] == 50
        exit_code, out = invoke(ENV, config)
        assert exit_code != 0 and out["code"] == 11
    finally:
        server.close()
