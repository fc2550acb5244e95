"""The agent's unix socket: one JSON request {"env", "stdin"} per connection,
one JSON reply {"exit", "stdout"} (the shim's side is `cni.shim.call_agent`)."""

from __future__ import annotations

import json
import logging
import os
import socketserver
import threading
import time
from pathlib import Path
from typing import Any

from cni import spec
from agent import metrics
from agent.verbs import Agent

log = logging.getLogger(__name__)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server
    timeout = 60  # the shim sends its whole request at once, then half-closes

    def handle(self) -> None:
        start = time.perf_counter()
        raw = self.rfile.read()
        code, out = self.server.agent_reply(raw)
        try:
            self.wfile.write(json.dumps({"exit": code, "stdout": out}).encode())
        except (BrokenPipeError, ConnectionResetError):
            # The shim went first (a runtime's timeout, or a kubelet gone, kills
            # it): the runtime counts the verb failed. Its DEL may already have
            # overtaken an ADD here, so an ADD done undoes itself.
            log.info("client left before the answer (exit %d)", code)
            if code == 0:
                self.server.caller_left(raw)
            return
        log.debug("request served in %.1f ms (exit %d)", (time.perf_counter() - start) * 1000, code)


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    # A node starting many pods at once connects many shims at once; unix
    # sockets refuse (EAGAIN) rather than queue past the backlog.
    request_queue_size = 512

    def __init__(self, path: str, agent: Agent) -> None:
        self.agent = agent
        super().__init__(path, _Handler)

    def agent_reply(self, raw: bytes) -> tuple[int, Any]:
        try:
            env, stdin = decode_request(raw)
        except spec.CniError as err:
            return 1, err.to_result()
        with metrics.cni_request(env.get("CNI_COMMAND", "")) as request:
            try:
                code, out = self.agent.handle(env, stdin)
            except Exception as err:  # the edge: a bug must still answer in the spec's shape
                log.exception("request failed")
                failure = spec.CniError(spec.Code.INTERFACE_FAILURE, f"internal error in the multinet agent: {err!r}")
                return 1, failure.to_result(spec.reply_version(env, stdin))
            request.done(code)
            return code, out

    def caller_left(self, raw: bytes) -> None:
        env, stdin = decode_request(raw)  # it decoded once already
        try:
            self.agent.caller_left(env, stdin)
        except spec.CniError as err:
            log.error("undo of an ADD whose caller left: %s", err)


def decode_request(raw: bytes) -> tuple[dict[str, str], str]:
    """The shim's request frame; CniError(6) when it is not one."""
    try:
        request = json.loads(raw)
        env, stdin = request["env"], request["stdin"]
        if not isinstance(env, dict) or not isinstance(stdin, str) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise TypeError("env must map strings to strings and stdin be a string")
    except (ValueError, KeyError, TypeError, RecursionError) as err:  # RecursionError: nested too deep
        raise spec.CniError(spec.Code.DECODING_FAILURE, "malformed request on the agent socket", str(err)) from None
    return env, stdin


class AgentServer:
    """Serves an Agent on a unix socket from a background thread."""

    def __init__(self, agent: Agent, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # a socket left by a previous run
        self.path = path
        self._server = _Server(str(path), agent)
        os.chmod(path, 0o600)
        self._thread = threading.Thread(target=self._server.serve_forever, name="cni-socket", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)
