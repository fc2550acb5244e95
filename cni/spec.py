"""The CNI 1.1.0 execution protocol: parse a request, shape results and errors.

Standard library only: the plugin shim imports this on every invocation, so it
must start fast; the agent imports it too and parses the same request again at
its socket (it never trusts the shim). Pure: no I/O.

Spec references are to SPEC.md 1.1.0 of containernetworking/cni, section 2
("Execution Protocol") and section 5 ("Result Types").

Start time: this module avoids `typing`, `collections`, `dataclasses`, `enum`
and `ipaddress` at import (together most of the shim's own start); the
request is a slotted class and ipaddress is imported only when a prevResult
is checked. JSON is the standard `json` module.
"""

from __future__ import annotations

import json

from cni.result import normalise_result
from cni.result import version_key as version_key  # versions order results and configs alike

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `collections` is another import at start
    from collections.abc import Mapping, Sequence
    from typing import Any

SUPPORTED_VERSIONS: tuple[str, ...] = ("0.4.0", "1.0.0", "1.1.0")
LATEST_VERSION = "1.1.0"
COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")
# Field of the GC input; libcni also sets the earlier, misspelt key, so both
# are read (containernetworking/cni#1101).
VALID_ATTACHMENTS_KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")

_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_REST = _ALNUM | frozenset("_.-")


def valid_id(value: str) -> bool:
    """Spec 2: container ids and network names start alphanumeric, then
    alphanumerics, underscore, dot or hyphen."""
    return bool(value) and value[0] in _ALNUM and all(c in _ID_REST for c in value)


class Code:
    """Well-known error codes (spec 2, "Error"); plain ints (see the module note)."""

    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENVIRONMENT = 4
    IO_FAILURE = 5
    DECODING_FAILURE = 6
    INVALID_CONFIG = 7
    TRY_AGAIN_LATER = 11
    # STATUS only.
    NOT_AVAILABLE = 50
    LIMITED_CONNECTIVITY = 51
    # Plugin-specific codes start at 100.
    INTERFACE_FAILURE = 100
    CHECK_FAILED = 101


class CniError(Exception):
    """An error the plugin reports as the spec's error result."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = int(code)
        self.msg = msg
        self.details = details

    def to_result(self, version: str = LATEST_VERSION) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


class Attachment:
    """One (container id, interface name) pair, the key of per-attachment state."""

    __slots__ = ("container_id", "ifname")

    def __init__(self, container_id: str, ifname: str) -> None:
        self.container_id = container_id
        self.ifname = ifname


class Request:
    """One validated invocation (read-only by convention; see the module note)."""

    __slots__ = ("command", "version", "container_id", "netns", "ifname", "args", "path", "config",
                 "prev_result", "valid_attachments")

    def __init__(
        self,
        command: str,
        version: str,  # the negotiated cniVersion, used for the reply
        container_id: str = "",
        netns: str = "",
        ifname: str = "",
        args: Mapping[str, str] | None = None,  # CNI_ARGS
        path: tuple[str, ...] = (),
        config: Mapping[str, Any] | None = None,
        prev_result: Mapping[str, Any] | None = None,  # normalised to the 1.1.0 shape
        valid_attachments: tuple[Attachment, ...] = (),
    ) -> None:
        self.command = command
        self.version = version
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.args: Mapping[str, str] = args or {}
        self.path = path
        self.config: Mapping[str, Any] = config or {}
        self.prev_result = prev_result
        self.valid_attachments = valid_attachments

    @property
    def network(self) -> str:
        return str(self.config.get("name", ""))


def parse_request(env: Mapping[str, str], stdin: bytes | str) -> Request:
    """Validate one invocation; raise CniError with the spec's code on bad input."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(
            Code.INVALID_ENVIRONMENT,
            f"CNI_COMMAND {command!r} is not one of {', '.join(COMMANDS)}",
        )
    if command == "VERSION":
        return Request(command=command, version=_version_of_version_input(stdin))
    config = decode_config(stdin)
    version = negotiate_version(config)
    if command in ("GC", "STATUS") and version_key(version) < (1, 1, 0):
        raise CniError(
            Code.INCOMPATIBLE_VERSION,
            f"{command} needs cniVersion 1.1.0 or later, the config has {version}",
        )
    _check_env(command, env)
    _check_config(command, config)
    return Request(
        command=command,
        version=version,
        container_id=env.get("CNI_CONTAINERID", ""),
        netns=env.get("CNI_NETNS", ""),
        ifname=env.get("CNI_IFNAME", ""),
        args=parse_cni_args(env.get("CNI_ARGS", "")),
        path=tuple(p for p in env.get("CNI_PATH", "").split(":") if p),
        config=config,
        prev_result=_prev_result(command, config),
        valid_attachments=_valid_attachments(command, config),
    )


def _version_of_version_input(stdin: bytes | str) -> str:
    """Spec 5, Version: the output's cniVersion is the one given on input
    (supportedVersions says what we speak); without one, the latest."""
    try:
        doc = json.loads(stdin) if stdin else {}
    except (ValueError, UnicodeDecodeError, RecursionError):
        return LATEST_VERSION
    asked = doc.get("cniVersion") if isinstance(doc, dict) else None
    if isinstance(asked, str) and _looks_like_version(asked):
        return asked
    return LATEST_VERSION


def _looks_like_version(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 3 and all(p.isdigit() and p.isascii() and len(p) < 6 for p in parts)


def decode_config(stdin: bytes | str) -> dict[str, Any]:
    try:
        text = stdin.decode("utf-8") if isinstance(stdin, bytes) else stdin
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise CniError(
            Code.DECODING_FAILURE, "failed to decode the network configuration on stdin", str(err)
        ) from None
    if not isinstance(doc, dict):
        raise CniError(
            Code.DECODING_FAILURE,
            f"the network configuration on stdin must be a JSON object, got {type(doc).__name__}",
        )
    return doc


def negotiate_version(config: Mapping[str, Any]) -> str:
    """The highest version we speak among cniVersion and cniVersions (spec 1,
    "Version considerations"; libcni reads both fields the same way)."""
    versions = config.get("cniVersions")
    if versions is not None:
        if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
            raise CniError(Code.INVALID_CONFIG, "cniVersions must be a list of strings")
    version = config.get("cniVersion")
    if version is not None and not isinstance(version, str):
        raise CniError(Code.INVALID_CONFIG, f"cniVersion must be a string, got {version!r}")
    offered = [*(versions or ()), *([version] if version is not None else [])]
    common = [v for v in offered if v in SUPPORTED_VERSIONS]
    if common:
        return str(max(common, key=version_key))
    if not offered:
        # libcni reads a config without cniVersion as 0.1.0, which we do not speak.
        raise CniError(
            Code.INCOMPATIBLE_VERSION,
            "cniVersion is missing (read as 0.1.0); supported: " + ", ".join(SUPPORTED_VERSIONS),
        )
    shown = version if version is not None else ", ".join(offered)
    raise CniError(
        Code.INCOMPATIBLE_VERSION,
        f"cniVersion {shown!r} is not supported; supported: " + ", ".join(SUPPORTED_VERSIONS),
    )


def _check_env(command: str, env: Mapping[str, str]) -> None:
    """Spec 2, "Parameters": which variables each verb requires, and their form."""
    required = {
        "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
        "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
        "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
        "GC": ("CNI_PATH",),
    }.get(command, ())
    problems = [f"{name} is required for {command}" for name in required if not env.get(name)]
    container_id = env.get("CNI_CONTAINERID", "")
    if container_id and not valid_id(container_id):
        problems.append(
            f"CNI_CONTAINERID {container_id!r} must start with an alphanumeric character "
            "followed by alphanumerics, '_', '.' or '-'"
        )
    ifname = env.get("CNI_IFNAME", "")
    if ifname and (reason := ifname_problem(ifname)):
        problems.append(f"CNI_IFNAME {ifname!r} {reason}")
    try:
        parse_cni_args(env.get("CNI_ARGS", ""))
    except ValueError as err:
        problems.append(f"CNI_ARGS: {err}")
    if problems:
        raise CniError(Code.INVALID_ENVIRONMENT, "; ".join(problems))


def ifname_problem(name: str) -> str:
    """Why an interface name breaks spec 2's rules, or "" when it is fine."""
    if name in (".", ".."):
        return "must not be '.' or '..'"
    if len(name) > 15:
        return "must be shorter than 16 characters"
    if any(c in "/:" or c.isspace() for c in name):
        return "must not contain '/', ':' or whitespace"
    if not name.isprintable():
        return "must be printable"
    return ""


def parse_cni_args(raw: str) -> dict[str, str]:
    """CNI_ARGS: "K1=V1;K2=V2" (spec 2). Unknown keys are kept, not rejected."""
    out: dict[str, str] = {}
    for pair in raw.split(";"):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"pair {pair!r} is not KEY=VALUE")
        out[key] = value
    return out


def _check_config(command: str, config: Mapping[str, Any]) -> None:
    name = config.get("name")
    if not isinstance(name, str) or not valid_id(name):
        raise CniError(
            Code.INVALID_CONFIG,
            f"name {name!r} must be a string starting with an alphanumeric character "
            "followed by alphanumerics, '_', '.' or '-'",
        )
    if not isinstance(config.get("type"), str) or not config.get("type"):
        raise CniError(Code.INVALID_CONFIG, f"type {config.get('type')!r} must be a non-empty string")
    # Addresses come from the cluster's IPAM (the controller), never from an
    # IPAM plugin: an "ipam" section would be silently ignored, so refuse it.
    if "ipam" in config:
        raise CniError(
            Code.UNSUPPORTED_FIELD,
            f"unsupported field ipam={json.dumps(config['ipam'])}: "
            "multinet takes addresses from the pod's allocations",
        )
    socket = config.get("socket")
    if socket is not None and (not isinstance(socket, str) or not socket.startswith("/")):
        raise CniError(Code.INVALID_CONFIG, f"socket {socket!r} must be an absolute path")
    # Present means a number (null too is refused): the shim reads it as one.
    timeout = config.get("timeoutSeconds")
    if "timeoutSeconds" in config and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600
    ):
        raise CniError(Code.INVALID_CONFIG, f"timeoutSeconds {timeout!r} must be a number in (0, 3600]")
    if command == "CHECK" and "prevResult" not in config:
        raise CniError(Code.INVALID_CONFIG, "prevResult is required for CHECK")


def _prev_result(command: str, config: Mapping[str, Any]) -> Mapping[str, Any] | None:
    raw = config.get("prevResult")
    if raw is None:
        return None
    try:
        return normalise_result(raw)
    except ValueError as err:
        raise CniError(Code.INVALID_CONFIG, f"prevResult{err}") from None


def _valid_attachments(command: str, config: Mapping[str, Any]) -> tuple[Attachment, ...]:
    if command != "GC":
        return ()
    key = next((k for k in VALID_ATTACHMENTS_KEYS if k in config), VALID_ATTACHMENTS_KEYS[0])
    raw = config.get(key, [])
    if not isinstance(raw, list):
        raise CniError(Code.INVALID_CONFIG, f"{key} must be a list of objects")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str) or not isinstance(
            item.get("ifname"), str
        ):
            raise CniError(
                Code.INVALID_CONFIG,
                f"{key}[{i}] must be an object with string containerID and ifname",
            )
        out.append(Attachment(item["containerID"], item["ifname"]))
    return tuple(out)


def version_result(version: str) -> dict[str, Any]:
    return {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


def reply_version(env: Mapping[str, str], stdin: bytes | str) -> str:
    """The cniVersion to put on an error reply (spec 5, Error: the
    configuration's): the negotiated one, else the config's own cniVersion
    even when we do not speak it, else the latest."""
    try:
        doc = json.loads(stdin)
    except (ValueError, UnicodeDecodeError, TypeError, RecursionError):
        return LATEST_VERSION
    if not isinstance(doc, dict):
        return LATEST_VERSION
    try:
        return negotiate_version(doc)
    except CniError:
        given = doc.get("cniVersion")
        return given if isinstance(given, str) and _looks_like_version(given) else LATEST_VERSION


def env_subset(env: Mapping[str, str], names: Sequence[str] = ()) -> dict[str, str]:
    """The CNI_* variables of an environment (what the shim forwards)."""
    return {k: v for k, v in env.items() if k.startswith("CNI_") or k in names}
