"""Generated CNI invocations, and a model of the node agent's attachment records.

The strategies mix values a runtime really sends (a small pool of container
ids, interface names, networks and real namespaces, so ADD, DEL, CHECK and
GC meet the same attachments) with arbitrary text and bytes. A generated
CNI_NETNS never names an existing namespace or file other than the fuzz
namespaces: the agent must not be pointed at the host's (or another test's)
namespaces.

`RecordsModel` follows what the agent answered (spec 2: ADD creates the
attachment, DEL and GC remove it) and checks the records directory against it.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from agent import links
from agent.record import AttachmentRecord, Phase
from cni import spec
from datapath.netns import netns_path

CONTAINERS = ("fz0", "fz1", "fz2")
IFNAMES = ("eth0", "net9")
NETWORKS = ("multinet", "fzalt")
COMMANDS = (*spec.COMMANDS, "", "add", "FOO", "ADD ")
ERROR_CODES = frozenset(v for k, v in vars(spec.Code).items() if k.isupper())
# A value of an environment variable: no NUL (execve cannot carry it); bytes
# need not be UTF-8 (the shim reads os.environ as the runtime set it).
env_text = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=40)
env_bytes = st.binary(max_size=40).map(lambda b: b.replace(b"\0", b""))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)


def harmless_netns(value: str, mine: Sequence[str]) -> bool:
    """False for a CNI_NETNS that names an existing file other than ours (a
    directory is harmless: setns refuses it)."""
    if value in mine or not value:
        return True
    try:
        path = netns_path(value)
        return not os.path.exists(path) or os.path.isdir(path)
    except ValueError:  # an embedded NUL cannot name anything
        return True


@dataclass(frozen=True)
class Pools:
    """The real things a generated invocation may name."""

    netns: tuple[str, ...]  # CNI_NETNS paths of the fuzz pod namespaces
    pods: tuple[tuple[str, str, str], ...]  # (namespace, name, uid) of real pods on the agent's node
    namespace: str  # a real Kubernetes namespace (for names of pods that do not exist)

    def cni_args(self) -> st.SearchStrategy[str]:
        real = [f"IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={n};K8S_POD_UID={uid}"
                for ns, n, uid in self.pods]
        odd = ["", "IgnoreUnknown=1", "K8S_POD_NAME=x", "garbage", ";;", "=x",
               f"K8S_POD_NAMESPACE={self.namespace};K8S_POD_NAME=missing-pod",
               # Not a pod's name: path segments the apiserver resolves elsewhere.
               f"K8S_POD_NAMESPACE={self.namespace};K8S_POD_NAME=..",
               f"K8S_POD_NAMESPACE={self.namespace};K8S_POD_NAME=.",
               f"K8S_POD_NAMESPACE=..;K8S_POD_NAME={self.pods[0][1] if self.pods else 'x'}",
               f"K8S_POD_NAMESPACE={self.namespace};K8S_POD_NAME=a/b"]
        return st.sampled_from(real + odd) | env_text

    def netns_values(self) -> st.SearchStrategy[str]:
        odd = ["", "/nonexistent/netns", "relative", "/var/run/netns/fz-missing", "/", "fz-missing"]
        mine = self.netns
        return st.sampled_from([*mine, *mine, *odd]) | env_text.filter(lambda v: harmless_netns(v, mine))

    def env(self, extra: Mapping[str, st.SearchStrategy[str]] | None = None) -> st.SearchStrategy[dict[str, str]]:
        """A CNI environment: each variable may be missing, sensible or arbitrary."""
        return st.fixed_dictionaries(
            {"CNI_COMMAND": st.sampled_from(COMMANDS) | env_text},
            optional={
                "CNI_CONTAINERID": st.sampled_from(CONTAINERS) | env_text,
                "CNI_NETNS": self.netns_values(),
                "CNI_IFNAME": st.sampled_from([*IFNAMES, "", "x" * 16, "a/b", "..", "eth 0"]) | env_text,
                "CNI_ARGS": self.cni_args(),
                "CNI_PATH": st.sampled_from(["/opt/cni/bin", "", "/a:/b"]) | env_text,
                **(extra or {}),
            },
        )

    def sensible_env(self) -> st.SearchStrategy[dict[str, str]]:
        """Mostly well-formed invocations, so that verbs reach the agent's work;
        a container mostly in a namespace of its own, as under a runtime."""
        def env(i: int, own: bool) -> st.SearchStrategy[dict[str, str]]:
            return st.fixed_dictionaries({
                "CNI_COMMAND": st.sampled_from(["ADD", "ADD", "DEL", "DEL", "CHECK", "GC", "STATUS"]),
                "CNI_CONTAINERID": st.just(CONTAINERS[i]),
                "CNI_NETNS": st.just(self.netns[i % len(self.netns)]) if own else st.sampled_from(self.netns),
                "CNI_IFNAME": st.sampled_from(IFNAMES),
                "CNI_PATH": st.just("/opt/cni/bin"),
            }, optional={"CNI_ARGS": self.cni_args()})

        return st.tuples(st.integers(0, len(CONTAINERS) - 1), st.booleans() | st.just(True)).flatmap(
            lambda pick: env(*pick))


def attachments() -> st.SearchStrategy[Any]:
    item = st.fixed_dictionaries({"containerID": st.sampled_from(CONTAINERS), "ifname": st.sampled_from(IFNAMES)})
    return st.lists(item, max_size=4) | json_values


def configs(socket: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """A network configuration: the usual keys, sensible or arbitrary."""
    optional: dict[str, st.SearchStrategy[Any]] = {
        "cniVersions": st.just(["1.0.0", "1.1.0"]) | json_values,
        "prevResult": st.just({"cniVersion": "1.1.0", "interfaces": [{"name": "eth0"}],
                               "ips": [{"address": "10.244.93.9/32", "interface": 0}]}) | json_values,
        "cni.dev/valid-attachments": attachments(),
        "timeoutSeconds": st.sampled_from([5, 0, -1, 3601, "5", True]) | json_values,
        "ipam": json_values,
        "runtimeConfig": json_values,
        "args": json_values,
    }
    if socket is not None:
        optional["socket"] = socket
    return st.fixed_dictionaries({
        "cniVersion": st.sampled_from(["1.1.0", "1.1.0", "1.0.0", "0.4.0", "0.3.1", ""]) | json_values,
        "name": st.sampled_from(NETWORKS) | json_values,
        "type": st.just("multinet-cni") | json_values,
    }, optional=optional)


def sensible_configs() -> st.SearchStrategy[dict[str, Any]]:
    """Configurations a runtime sends, so that most requests reach the agent's work."""
    return st.fixed_dictionaries({
        "cniVersion": st.sampled_from(["1.1.0", "1.1.0", "1.0.0", "0.4.0"]),
        "name": st.sampled_from(NETWORKS),
        "type": st.just("multinet-cni"),
    }, optional={
        "cni.dev/valid-attachments": st.lists(st.fixed_dictionaries(
            {"containerID": st.sampled_from(CONTAINERS), "ifname": st.sampled_from(IFNAMES)}), max_size=4),
        "prevResult": st.just({"cniVersion": "1.1.0", "interfaces": [{"name": "eth0"}],
                               "ips": [{"address": "10.244.93.9/32", "interface": 0}]}),
    })


def stdins(socket: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[bytes]:
    as_json = configs(socket).map(lambda c: json.dumps(c).encode())
    return st.one_of(as_json, as_json, st.binary(max_size=200),
                     st.sampled_from([b"{not json", b"", b"\xff\xfe", b"[" * 5000, b'{"cniVersion": "1.1.0"']))


def check_answer(code: int, out: Any, command: str) -> list[str]:
    """Problems with one plugin answer (spec 2 exit codes, spec 5 result and error shapes)."""
    if code == 0:
        if out in ({}, None):
            return [] if command in ("DEL", "CHECK", "GC", "STATUS") else [f"{command} succeeded with no result"]
        if not isinstance(out, dict) or not isinstance(out.get("cniVersion"), str):
            return [f"success without a cniVersion: {out!r}"]
        return []
    if code != 1:
        return [f"exit code {code} (an error is exit 1 with the code in the document)"]
    if not isinstance(out, dict) or not set(out) <= {"cniVersion", "code", "msg", "details"}:
        return [f"error document of the wrong shape: {out!r}"]
    problems = []
    if out.get("code") not in ERROR_CODES:
        problems.append(f"error code {out.get('code')!r} is not one of the spec's or ours")
    if not isinstance(out.get("msg"), str) or not out["msg"]:
        problems.append(f"error without a message: {out!r}")
    version = out.get("cniVersion")
    if not isinstance(version, str) or version.count(".") != 2:
        problems.append(f"error with cniVersion {version!r}")
    return problems


def check_result(env: Mapping[str, str], out: Mapping[str, Any]) -> list[str]:
    """An ADD's result names CNI_IFNAME in CNI_NETNS, with an address on it
    (spec 5). A chain's prevResult may name a host-side link of the same
    name (no sandbox); that entry is kept as given and does not count."""
    interfaces = out.get("interfaces", [])
    pod_side = {n for n, i in enumerate(interfaces)
                if i.get("name") == env.get("CNI_IFNAME") and i.get("sandbox") == env.get("CNI_NETNS")}
    if not pod_side:
        return [f"ADD result does not name {env.get('CNI_IFNAME')} in {env.get('CNI_NETNS')}: {out!r}"]
    if not any(ip.get("interface") in pod_side for ip in out.get("ips", [])):
        return [f"ADD result without an address on {env.get('CNI_IFNAME')}: {out!r}"]
    return []


Key = tuple[str, str, str]  # (network, container id, ifname): the spec's attachment key


@dataclass
class RecordsModel:
    """The attachments the agent should hold, from the answers it gave."""

    state_dir: Path
    pods: frozenset[tuple[str, str, str]]
    keys: dict[Key, str] = field(default_factory=dict)  # -> the CNI_NETNS it was made in
    # The latest requests: state carries over between cases, so a failure
    # shows the requests that led to it (the shrinker sees only the last).
    history: deque[str] = field(default_factory=lambda: deque(maxlen=12))

    def observe(self, env: Mapping[str, str], stdin: bytes, code: int) -> list[str]:
        """Apply one answered request; returns problems the answer shows by itself."""
        command = env.get("CNI_COMMAND", "")
        self.history.append(f"{command} {env.get('CNI_CONTAINERID')}/{env.get('CNI_IFNAME')} "
                            f"in {env.get('CNI_NETNS')} ({stdin[:60]!r}) -> exit {code}")
        if command == "ADD" and code != 0:
            self._failed_add(env)
            return []
        if command not in ("ADD", "DEL", "GC") or (code != 0 and command == "DEL"):
            return []  # a failed DEL keeps the record, to be retried
        try:
            config = json.loads(stdin)
        except (ValueError, RecursionError):
            return []  # refused before anything was looked at (a GC fails so: exit 1, code 6)
        if not isinstance(config, dict) or not isinstance(config.get("name"), str):
            return []
        network = config["name"]
        key = (network, env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", ""))
        if command == "ADD":
            self.keys[key] = env.get("CNI_NETNS", "")
            return self._named_pod_exists(env)
        if command == "DEL":
            self.keys.pop(key, None)
            return []
        return self._gc(network, config, code)

    def _failed_add(self, env: Mapping[str, str]) -> None:
        """A failed ADD rolls back what it made. An attachment of the same key in
        another namespace was replaced first (the runtime lost it), so it may be
        gone too; one in the same namespace stays (ADD without DEL is refused)."""
        for key, netns in list(self.keys.items()):
            if key[1:] == (env.get("CNI_CONTAINERID"), env.get("CNI_IFNAME")) and netns != env.get("CNI_NETNS"):
                if key not in self.on_disk():
                    del self.keys[key]

    def _named_pod_exists(self, env: Mapping[str, str]) -> list[str]:
        args = spec.parse_cni_args(env.get("CNI_ARGS", ""))
        ns, name, uid = args.get("K8S_POD_NAMESPACE"), args.get("K8S_POD_NAME"), args.get("K8S_POD_UID", "")
        if not ns and not name:
            return []
        if not any(p[:2] == (ns, name) and uid in ("", p[2]) for p in self.pods):
            return [f"ADD succeeded for pod {ns}/{name} (uid {uid!r}), which does not exist"]
        return []

    def _gc(self, network: str, config: Mapping[str, Any], code: int) -> list[str]:
        key_name = next((k for k in spec.VALID_ATTACHMENTS_KEYS if k in config), spec.VALID_ATTACHMENTS_KEYS[0])
        given = config.get(key_name, [])
        if not isinstance(given, list) or not all(isinstance(a, dict) for a in given):
            return []  # refused (spec 2: the list is of objects); nothing collected
        valid = {(a.get("containerID"), a.get("ifname")) for a in given}
        stale = {k for k in self.keys if k[0] == network and k[1:] not in valid}
        # A GC that reports errors went on past them (spec 2): whatever it removed is gone.
        gone = stale if code == 0 else stale - self.on_disk()
        for key in gone:
            del self.keys[key]
        return []

    def on_disk(self) -> set[Key]:
        return {r.key for r in self.records()}

    def records(self) -> list[AttachmentRecord]:
        return [AttachmentRecord.from_json(json.loads(p.read_text())) for p in sorted(self.state_dir.glob("*.json"))]

    def check(self) -> list[str]:
        """The records directory against the model: every file a record, no ADD
        left half-made, exactly the attachments answered for, each one's links there."""
        problems = [f"temporary file left: {p.name}" for p in self.state_dir.glob(".tmp-*")]
        try:
            records = self.records()
        except (ValueError, KeyError, TypeError) as err:
            return [*problems, f"a record does not parse: {err!r}"]
        problems += [f"record {r.key} is still {r.phase}" for r in records if r.phase != Phase.READY]
        on_disk = {r.key for r in records}
        if on_disk != set(self.keys):
            problems.append(f"records {sorted(on_disk)} but the answers make {sorted(self.keys)}")
        for r in records:
            problems += _missing_links(r)
        return problems + ["after: " + "; ".join(self.history)] if problems else []


def _missing_links(record: AttachmentRecord) -> list[str]:
    problems = []
    for owned in record.links:
        try:
            with links.rtnl(owned.netns) as ipr:
                state = links.link_state(ipr, owned.name)
        except links.NetnsGone:
            state = None
        if state is None or (owned.mac is not None and state.mac != owned.mac):
            problems.append(f"record {record.key}: link {owned.name} in {owned.netns} is gone")
    return problems


# --- the agent's socket ---------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """How a client writes one frame: whole, in small pieces, or going away."""

    chunk: int = 0  # 0: one write
    pause: float = 0.0  # between pieces
    close_early: bool = False  # half-close, then close without reading the reply

    def __str__(self) -> str:
        return "close-early" if self.close_early else f"chunks of {self.chunk}" if self.chunk else "whole"


deliveries = st.one_of(
    st.just(Delivery()),
    st.builds(Delivery, chunk=st.integers(1, 64), pause=st.sampled_from([0.0, 0.001, 0.005])),
    st.just(Delivery(close_early=True)),
)


def exchange(path: str, frame: bytes, how: Delivery = Delivery(), timeout: float = 90.0) -> bytes | None:
    """One request on the agent's socket, as cni.shim.call_agent makes it; the reply, or None."""
    import socket
    import time

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        step = how.chunk or max(1, len(frame))
        for i in range(0, len(frame), step):
            sock.sendall(frame[i:i + step])
            if how.pause:
                time.sleep(how.pause)
        sock.shutdown(socket.SHUT_WR)
        if how.close_early:
            return None
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def frame(env: Mapping[str, str], stdin: str) -> bytes:
    return json.dumps({"env": dict(env), "stdin": stdin}).encode()


STATUS = frame({"CNI_COMMAND": "STATUS", "CNI_PATH": "/opt/cni/bin"},
               json.dumps({"cniVersion": "1.1.0", "name": "multinet", "type": "multinet-cni"}))
VERSION = frame({"CNI_COMMAND": "VERSION"}, json.dumps({"cniVersion": "1.0.0"}))


def still_answering(path: str) -> list[str]:
    """A valid STATUS and VERSION get their answers (spec 2)."""
    problems = []
    status = json.loads(exchange(path, STATUS, timeout=30) or b"null")
    if status != {"exit": 0, "stdout": None}:
        problems.append(f"STATUS answered {status!r}")
    version = json.loads(exchange(path, VERSION, timeout=30) or b"null")
    out = version.get("stdout") if isinstance(version, dict) else None
    if version.get("exit") != 0 or not isinstance(out, dict) or out.get("cniVersion") != "1.0.0" or (
            "1.1.0" not in out.get("supportedVersions", ())):
        problems.append(f"VERSION answered {version!r}")
    return problems


def wait_log(agent: Any, text: str, timeout: float = 10.0) -> bool:
    """Whether `text` turns up in the agent's log (its handler threads log after answering)."""
    import time

    deadline = time.monotonic() + timeout
    while text not in agent.log():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
