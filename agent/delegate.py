"""Delegating the cluster default network to the primary CNI conflist, as Multus does.

The primary conflist is the first file (by name) in the CNI config dir that is
not multinet's own. Its plugins are invoked exactly as a runtime would (spec
section 3): in order for ADD and CHECK, in reverse for DEL, each with the
list's name and cniVersion injected and the previous plugin's result as
`prevResult`.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datapath.netns import netns_path
from cni.spec import LATEST_VERSION, Code, CniError, version_key

OWN_TYPE = "multinet-cni"


@dataclass(frozen=True)
class ConfList:
    path: str
    name: str
    version: str
    plugins: tuple[Mapping[str, Any], ...]
    disable_check: bool = False  # spec 1: the runtime must not CHECK this list
    disable_gc: bool = False  # spec 1: the runtime must not GC this list


def conflists(conf_dir: Path) -> Iterator[ConfList]:
    """The network configurations in `conf_dir` in the order a runtime reads them (by name)."""
    candidates = sorted(
        p for p in conf_dir.glob("*") if p.suffix in (".conflist", ".conf", ".json") and p.is_file()
    )
    for path in candidates:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # the runtime skips unreadable configs too
        conf = _as_list(str(path), doc)
        if conf is not None:
            yield conf


def find_primary(conf_dir: Path) -> ConfList:
    """The primary network's conflist; CniError(11) while none is installed."""
    for conf in conflists(conf_dir):
        if all(p.get("type") != OWN_TYPE for p in conf.plugins):
            return conf
    raise CniError(Code.TRY_AGAIN_LATER, f"no primary CNI network config in {conf_dir}")


def _as_list(path: str, doc: Any) -> ConfList | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        return None
    plugins = doc.get("plugins") if "plugins" in doc else [doc]
    if not isinstance(plugins, list) or not plugins or not all(isinstance(p, dict) for p in plugins):
        return None
    return ConfList(path, doc["name"], list_version(doc), tuple(plugins),
                    disable_check=_flag(doc.get("disableCheck")), disable_gc=_flag(doc.get("disableGC")))


def _flag(value: Any) -> bool:
    """A boolean field of a list; libcni also reads the string "true"."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def list_version(doc: Mapping[str, Any]) -> str:
    """The version a runtime runs a list at: the highest of cniVersion and
    cniVersions it implements (spec 1, "Version considerations"; as libcni)."""
    offered = [v for v in [*(doc.get("cniVersions") or ()), doc.get("cniVersion")] if isinstance(v, str)]
    usable = [v for v in offered if _key(v) is not None and _key(v) <= version_key(LATEST_VERSION)]  # type: ignore[operator]
    if usable:
        return max(usable, key=lambda v: version_key(v))
    return str(doc.get("cniVersion", ""))


def _key(version: str) -> tuple[int, ...] | None:
    try:
        return version_key(version)
    except ValueError:
        return None


@dataclass(frozen=True)
class Invocation:
    container_id: str
    netns: str
    ifname: str
    args: str
    path: Sequence[str]
    host_netns: str | None  # run the plugins inside the node's host namespace
    # The runtime's capability arguments as multinet received them; each plugin
    # gets those it declares in `capabilities` (spec 3, "Deriving runtimeConfig").
    runtime_config: Mapping[str, Any] = field(default_factory=dict)


def run_chain(command: str, conf: ConfList, inv: Invocation, prev: Mapping[str, Any] | None) -> Any:
    """ADD/CHECK/DEL over the chain; returns the final result (ADD) or None."""
    if command == "CHECK" and conf.disable_check:
        return None
    plugins = conf.plugins if command != "DEL" else tuple(reversed(conf.plugins))
    result = prev
    for plugin in plugins:
        stdin = _execution_config(plugin, conf, inv.runtime_config)
        if result is not None:
            stdin["prevResult"] = result
        out = _exec(command, plugin, stdin, inv)
        if command == "ADD":
            result = out
    return result if command == "ADD" else None


def run_network_verb(
    command: str, conf: ConfList, path: Sequence[str], host_netns: str | None, extra: Mapping[str, Any]
) -> list[CniError]:
    """STATUS or GC over every plugin of the list, as a runtime runs them
    (spec 2: a plugin forwards both to the plugins it delegates to). A list
    older than 1.1.0 knows neither verb and is skipped, as libcni does. STATUS
    stops at the first error (raised); GC goes on and returns its errors."""
    key = _key(conf.version)
    if key is None or key < (1, 1, 0) or (command == "GC" and conf.disable_gc):
        return []
    inv = Invocation(container_id="", netns="", ifname="", args="", path=path, host_netns=host_netns)
    errors: list[CniError] = []
    for plugin in conf.plugins:
        stdin = dict(_execution_config(plugin, conf), **extra)
        try:
            _exec(command, plugin, stdin, inv)
        except CniError as err:
            if command != "GC":
                raise
            errors.append(err)
    return errors


def _execution_config(
    plugin: Mapping[str, Any], conf: ConfList, runtime_config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Spec 3, "Deriving execution configuration": the list's name and
    version go in, `capabilities` comes out, and `runtimeConfig` holds the
    capability arguments the plugin declares and the runtime gave."""
    out = {k: v for k, v in plugin.items() if k != "capabilities"}
    out.update(name=conf.name, cniVersion=conf.version)
    declared = plugin.get("capabilities")
    if isinstance(declared, Mapping) and runtime_config:
        wanted = {k: v for k, v in runtime_config.items() if declared.get(k) is True}
        if wanted:
            out["runtimeConfig"] = wanted
    return out


def _exec(command: str, plugin: Mapping[str, Any], stdin: Mapping[str, Any], inv: Invocation) -> Any:
    binary = _find(str(plugin.get("type", "")), inv.path)
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": inv.container_id,
        "CNI_NETNS": inv.netns,
        "CNI_IFNAME": inv.ifname,
        "CNI_ARGS": inv.args,
        "CNI_PATH": ":".join(inv.path),
    }
    # A parameter the verb does not have is left unset, never set empty
    # (spec 2: e.g. DEL without CNI_NETNS, STATUS and GC without a container).
    env = {k: v for k, v in env.items() if v}
    env["PATH"] = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    argv = [binary]
    if inv.host_netns:
        argv = ["nsenter", f"--net={netns_path(inv.host_netns)}", "--", binary]
    proc = subprocess.run(argv, input=json.dumps(stdin).encode(), env=env, capture_output=True, timeout=60)
    text = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        raise _delegate_error(str(plugin.get("type")), text, proc.stderr.decode(errors="replace"))
    return json.loads(text) if text else None


def _find(plugin_type: str, path: Sequence[str]) -> str:
    for directory in path:
        candidate = os.path.join(directory, plugin_type)
        if plugin_type and "/" not in plugin_type and os.access(candidate, os.X_OK):
            return candidate
    raise CniError(Code.INVALID_CONFIG, f"delegate plugin {plugin_type!r} not found in CNI_PATH {':'.join(path)}")


def _delegate_error(plugin_type: str, stdout: str, stderr: str) -> CniError:
    try:
        doc = json.loads(stdout)
        code, msg = int(doc["code"]), str(doc.get("msg", ""))
        details = str(doc.get("details", ""))
    except (ValueError, KeyError, TypeError):
        code, msg, details = Code.INTERFACE_FAILURE, "failed", stderr or stdout
    return CniError(code, f"primary network plugin {plugin_type}: {msg}", details)
