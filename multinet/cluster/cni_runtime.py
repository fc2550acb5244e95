"""Invoke CNI plugins exactly as a container runtime does (CNI spec 1.1,
"Execution of Network Configurations"): each plugin of the conflist in order
for ADD with the previous result as `prevResult`, in reverse order for DEL
with the cached ADD result; parameters in CNI_* environment variables and the
plugin's configuration on stdin."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class CNIError(RuntimeError):
    def __init__(self, plugin: str, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"CNI plugin {plugin}: error {code}: {msg}" + (f" ({details})" if details else ""))
        self.code = code


@dataclass(frozen=True)
class Sandbox:
    container_id: str
    netns: str  # path, e.g. /var/run/netns/NAME
    ifname: str
    args: Mapping[str, str]  # CNI_ARGS key/values, e.g. K8S_POD_NAME


def load_conflist(conf_dir: Path) -> dict[str, Any]:
    """The first network configuration in lexical order, as kubelet picks it."""
    files = sorted(p for p in conf_dir.glob("*") if p.suffix in (".conflist", ".conf", ".json"))
    if not files:
        raise FileNotFoundError(f"no CNI network configuration in {conf_dir}")
    conf: dict[str, Any] = json.loads(files[0].read_text())
    if "plugins" not in conf:  # a single-plugin .conf is a list of one
        conf = {"cniVersion": conf.get("cniVersion"), "name": conf["name"], "plugins": [conf]}
    return conf


def _plugin_config(conflist: Mapping[str, Any], plugin: Mapping[str, Any], prev: Any) -> bytes:
    conf = dict(plugin)
    conf["cniVersion"] = conflist["cniVersion"]
    conf["name"] = conflist["name"]
    if prev is not None:
        conf["prevResult"] = prev
    return json.dumps(conf).encode()


def _run(
    command: str, plugin: Mapping[str, Any], stdin: bytes, sandbox: Sandbox,
    bin_dirs: Sequence[Path], runner: Sequence[str],
) -> Any:
    kind = plugin["type"]
    binary = next((d / kind for d in bin_dirs if (d / kind).is_file()), None)
    if binary is None:
        raise CNIError(kind, 0, f"plugin binary {kind!r} not found in CNI_PATH")
    env = dict(os.environ)
    env.update({
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": sandbox.container_id,
        "CNI_NETNS": sandbox.netns,
        "CNI_IFNAME": sandbox.ifname,
        "CNI_ARGS": ";".join(["IgnoreUnknown=1", *(f"{k}={v}" for k, v in sandbox.args.items())]),
        "CNI_PATH": os.pathsep.join(str(d) for d in bin_dirs),
    })
    out = subprocess.run([*runner, str(binary)], input=stdin, env=env, capture_output=True, timeout=120)
    if out.returncode != 0:
        try:
            err = json.loads(out.stdout)
            raise CNIError(kind, int(err.get("code", 0)), str(err.get("msg", "")), str(err.get("details", "")))
        except ValueError:
            raise CNIError(kind, out.returncode, out.stderr.decode(errors="replace").strip()) from None
    return json.loads(out.stdout) if out.stdout.strip() else None


def add(conflist: Mapping[str, Any], sandbox: Sandbox, bin_dirs: Sequence[Path], runner: Sequence[str] = ()) -> Any:
    """ADD through the whole list; `runner` prefixes each plugin's argv (e.g. `ip netns exec NS`)."""
    result = None
    for plugin in conflist["plugins"]:
        result = _run("ADD", plugin, _plugin_config(conflist, plugin, result), sandbox, bin_dirs, runner)
    return result


def delete(
    conflist: Mapping[str, Any], sandbox: Sandbox, bin_dirs: Sequence[Path], cached: Any,
    runner: Sequence[str] = (),
) -> list[CNIError]:
    """DEL every plugin in reverse; keeps going past failures and returns them."""
    errors = []
    for plugin in reversed(conflist["plugins"]):
        try:
            _run("DEL", plugin, _plugin_config(conflist, plugin, cached), sandbox, bin_dirs, runner)
        except CNIError as err:
            errors.append(err)
    return errors
