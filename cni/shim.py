"""`multinet-cni`: the CNI plugin binary, a thin shim in front of the node agent.

Standard library only (it runs once per verb per pod, so it must start fast).
It validates the invocation (so a malformed one never costs an agent round
trip), answers VERSION itself, and forwards everything else to the node
agent's unix socket: one JSON request {"env", "stdin"}, one JSON reply
{"exit", "stdout"}.

With the agent unreachable: ADD, CHECK and GC fail with code 11 (try again
later), DEL succeeds (spec 2: DEL must be idempotent and must not fail on
missing resources; the agent's GC removes leftovers later), STATUS reports 50.
"""

from __future__ import annotations

import json
import os
import sys

from cni import spec

TYPE_CHECKING = False  # annotation-only imports: see cni.spec on start time
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TextIO

DEFAULT_SOCKET = "/run/multinet/cni.sock"
SOCKET_ENV = "MULTINET_CNI_SOCKET"
DEFAULT_TIMEOUT = 120.0


class Unreachable(Exception):
    """The agent's socket is missing or nobody listens on it."""

    def __init__(self, message: str, socket_exists: bool) -> None:
        super().__init__(message)
        # A socket nobody listens on was left by an agent that was killed and
        # will be back (the agent removes its socket when it stops cleanly).
        self.socket_exists = socket_exists


def call_agent(path: str, env: Mapping[str, str], stdin: str, timeout: float) -> tuple[int, Any]:
    """One request/reply exchange with the agent."""
    # The C module, not `socket`: the wrapper's enum classes cost more start
    # time than the whole exchange.
    import _socket

    import time

    request = json.dumps({"env": dict(env), "stdin": stdin}).encode("utf-8")
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError) as err:
                raise Unreachable(f"multinet agent unreachable at {path}: {err.strerror}",
                                  isinstance(err, ConnectionRefusedError)) from None
            except BlockingIOError:
                # The agent's accept backlog is full (a burst of pods): it is
                # alive, so wait for room rather than fail the verb.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        sock.sendall(request)
        sock.shutdown(_socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    finally:
        sock.close()
    reply = json.loads(b"".join(chunks))
    return int(reply["exit"]), reply.get("stdout")


def run(env: Mapping[str, str], stdin: bytes, out: TextIO) -> int:
    """The whole plugin, minus process plumbing (tests call this directly)."""
    try:
        request = spec.parse_request(env, stdin)
    except spec.CniError as err:
        return _fail(err, spec.reply_version(env, stdin), out)
    if request.command == "VERSION":
        _emit(spec.version_result(request.version), out)
        return 0
    path = str(request.config.get("socket") or env.get(SOCKET_ENV) or DEFAULT_SOCKET)
    timeout = float(request.config.get("timeoutSeconds", DEFAULT_TIMEOUT))  # checked by spec.parse_request
    try:
        code, result = call_agent(path, spec.env_subset(env), stdin.decode("utf-8"), timeout)
    except Unreachable as err:
        return _agent_down(request, err, out)
    except (OSError, ValueError, KeyError) as err:
        # Timeout or a broken reply: the agent may still finish; retry later
        # (STATUS has codes of its own: not available).
        code = spec.Code.NOT_AVAILABLE if request.command == "STATUS" else spec.Code.TRY_AGAIN_LATER
        failure = spec.CniError(code, f"multinet agent at {path} failed", str(err))
        return _fail(failure, request.version, out)
    if result is not None:
        _emit(result, out)
    return code


def _agent_down(request: spec.Request, err: Unreachable, out: TextIO) -> int:
    # No agent on the node at all (no socket): nothing of ours to release, so a
    # DEL is done. A killed agent (its socket left): the DEL must wait for it,
    # or the runtime removes the sandbox while the agent still holds its record.
    if request.command == "DEL" and not err.socket_exists:
        print(f"multinet-cni: {err}; DEL treated as done", file=sys.stderr)
        return 0
    code = spec.Code.NOT_AVAILABLE if request.command == "STATUS" else spec.Code.TRY_AGAIN_LATER
    return _fail(spec.CniError(code, str(err)), request.version, out)


def _fail(err: spec.CniError, version: str, out: TextIO) -> int:
    _emit(err.to_result(version), out)
    return 1


def _emit(doc: Any, out: TextIO) -> None:
    out.write(json.dumps(doc))
    out.write("\n")
    out.flush()


def main() -> int:
    return run(os.environ, sys.stdin.buffer.read(), sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
