"""How the suite talks to a probe pod's agnhost netexec.

`proxy` (default): the apiserver's pod proxy,
`GET /api/v1/namespaces/NS/pods/NAME:8080/proxy/PATH?QUERY`, as the upstream
e2e framework does. `exec`: for clusters whose apiserver cannot reach pod
addresses, the same request made from inside the pod (curl to 127.0.0.1)
over pods/exec, which goes through the kubelet. Either way the pod's own
netexec does the dialling, so both give the same answers.

A TransportError means the suite could not ask: it says nothing about the
network path being probed.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from suite.pods import HTTP_PORT

# netexec gives each dial try 5 s (its HTTP client and UDP read deadline);
# the request carrying it needs longer.
REQUEST_TIMEOUT = 20.0


class TransportError(RuntimeError):
    pass


class CommandError(TransportError):
    """The suite reached the pod, but the command it ran there failed."""


class Transport(Protocol):
    name: str

    def get(self, namespace: str, pod: str, path: str, params: Mapping[str, str]) -> str: ...

    def shell(self, namespace: str, pod: str, command: str) -> str: ...


class ProxyTransport:
    name = "proxy"

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    def get(self, namespace: str, pod: str, path: str, params: Mapping[str, str]) -> str:
        where = f"pod proxy to {namespace}/{pod}:{HTTP_PORT}/{path}"
        try:
            gen = cast(Any, self.api)  # the generated client's raw request path; absent from the stubs
            request = gen.param_serialize(
                "GET", "/api/v1/namespaces/{namespace}/pods/{name}/proxy/{path}",
                path_params={"namespace": namespace, "name": f"{pod}:{HTTP_PORT}", "path": path},
                query_params=list(params.items()), header_params={"Accept": "*/*"}, auth_settings=["BearerToken"])
            resp = gen.call_api(*request, _request_timeout=REQUEST_TIMEOUT)
            data = resp.read()
        except Exception as err:  # urllib3 timeouts and connection errors share no base the client exports
            raise TransportError(f"{where}: {err}") from err
        text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
        # 417 is netexec's "the last try failed": its body is still the JSON answer.
        if not 200 <= resp.status < 300 and resp.status != 417:
            raise TransportError(f"{where}: {resp.status} {resp.reason}: {text[:200]}")
        return text

    def shell(self, namespace: str, pod: str, command: str) -> str:
        body = self.get(namespace, pod, "shell", {"cmd": command})
        try:
            data = json.loads(body)
        except json.JSONDecodeError as err:
            raise TransportError(f"{namespace}/{pod} /shell: not netexec's JSON: {body[:200]!r}") from err
        if data.get("error"):
            raise CommandError(f"{namespace}/{pod} /shell {command!r}: {data['error']}: {data.get('output', '')[:200]}")
        return str(data.get("output", ""))


class ExecTransport:
    name = "exec"

    def __init__(self, new_api: Callable[[], client.ApiClient]) -> None:
        # kubernetes.stream swaps the ApiClient's request method while it runs,
        # so every exec gets an ApiClient of its own (probes run in threads).
        self.new_api = new_api

    def _exec(self, namespace: str, pod: str, argv: list[str]) -> str:
        core = client.CoreV1Api(self.new_api())
        try:
            out = stream(core.connect_get_namespaced_pod_exec, pod, namespace, container="agnhost", command=argv,
                         stderr=True, stdin=False, stdout=True, tty=False, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as err:
            raise TransportError(f"exec in {namespace}/{pod}: {err.status} {err.reason}") from err
        except Exception as err:  # websocket errors
            raise TransportError(f"exec in {namespace}/{pod}: {err}") from err
        return str(out)

    def get(self, namespace: str, pod: str, path: str, params: Mapping[str, str]) -> str:
        url = f"http://127.0.0.1:{HTTP_PORT}/{path}?{urllib.parse.urlencode(dict(params))}"
        out = self._exec(namespace, pod, ["curl", "-sS", "--max-time", str(int(REQUEST_TIMEOUT) - 2), url])
        if out.startswith("curl:"):
            raise TransportError(f"exec in {namespace}/{pod}: {out.strip()[:200]}")
        return out

    def shell(self, namespace: str, pod: str, command: str) -> str:
        return self._exec(namespace, pod, ["/bin/sh", "-c", command])


def make(kind: str, api: client.ApiClient, new_api: Callable[[], client.ApiClient]) -> Transport:
    if kind == "exec":
        return ExecTransport(new_api)
    return ProxyTransport(api)
