"""The kopf wiring: kopf runs the process's lifecycle and its webhook server serves admission.

kopf watches nothing here (the informers do) and posts no Events of its own;
it calls back into the `Controller` at startup and cleanup. Its webhook server
(TLS, aiohttp, reloading renewed certificates) hands each AdmissionReview
straight to `review.Responder`, not through kopf's admission handlers, which
copy and diff the whole pod on every create. `/healthz` (`Health`) lives here
too, and answers while a replica waits for the lease.
"""

from __future__ import annotations

import asyncio
import http.server
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import aiohttp.web
import kopf

from controller import admission, install, review
from controller.certs import ServingCert
from kube import Kube, Obj

if TYPE_CHECKING:
    from controller.operator import Controller

WEBHOOK_HOST = "127.0.0.1"
SERVICE_PORT = 443  # the Service's port in front of the replicas' webhook port
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 30.0  # /healthz fails once kopf's event loop has not beaten for this long
ADMISSION_THREADS = 16  # validations that ask the apiserver (access reviews, in-use holds) at once


class RegisteringWebhookServer(kopf.WebhookServer):
    """kopf's server, which also registers our own webhook configurations once it listens
    (kopf's managed configurations cannot express matchConditions): at its own URL, or
    through the Service `service` (namespace, name) when replicas sit behind one.
    Requests go to `responder`, not to kopf's admission handlers (`fn`)."""

    def __init__(self, *, kube: Kube, cert: ServingCert, on_registered: Callable[[], None],
                 responder: review.Responder, service: tuple[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(certfile=str(cert.cert), pkeyfile=str(cert.key), cafile=str(cert.ca), **kwargs)
        self._kube = kube
        self._cert = cert
        self._service = service
        self._on_registered = on_registered
        self._responder = responder

    async def _answer(self, request: Any, *, webhook: str | None = None,
                      headers: dict[str, str] | None = None, sslpeer: dict[str, Any] | None = None) -> Any:
        try:
            return await self._responder(request, webhook=webhook)
        except review.BadReview as exc:  # not a request we can judge: the apiserver's failurePolicy decides
            raise aiohttp.web.HTTPBadRequest(text=str(exc)) from None  # a body: a reason phrase cannot carry any text

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        async for client_config in super().__call__(self._answer):
            url = f"https://{WEBHOOK_HOST}:{self._port_of(client_config.get('url') or '')}"
            mutating, validating = admission.webhook_configurations(url, self._cert.ca_bundle())
            if self._service is not None:
                mutating, validating = (through_service(c, self._service) for c in (mutating, validating))
            await asyncio.to_thread(install.apply_webhooks, self._kube, mutating, validating)
            self._on_registered()
            yield client_config

    @staticmethod
    def _port_of(url: str) -> int:
        return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def through_service(configuration: Obj, service: tuple[str, str]) -> Obj:
    """`configuration` with each webhook's URL replaced by the same path on the Service."""
    namespace, name = service
    hooks = []
    for hook in configuration["webhooks"]:
        path = "/" + hook["clientConfig"]["url"].split("://", 1)[1].split("/", 1)[1]
        hooks.append({**hook, "clientConfig": {
            "service": {"namespace": namespace, "name": name, "path": path, "port": SERVICE_PORT},
            "caBundle": hook["clientConfig"]["caBundle"]}})
    return {**configuration, "webhooks": hooks}


def free_port(address: str = WEBHOOK_HOST) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


class Health:
    """`GET /healthz` on its own port: 200 while the process waits (for the lease, for its
    informers) and, once kopf runs, while kopf's event loop beats; 503 when it stalls."""

    def __init__(self, address: str, port: int) -> None:
        self._last: float | None = None  # monotonic time of kopf's last beat; None before kopf runs
        health = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                if self.path.split("?", 1)[0] != "/healthz":
                    self.send_error(404)
                    return
                ok, why = health.status()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(why.encode() + b"\n")

            def log_message(self, *_: Any) -> None:
                pass  # one line per probe is noise

        self.server = http.server.ThreadingHTTPServer((address, port), Handler)

    def serve(self) -> None:
        threading.Thread(target=self.server.serve_forever, name="healthz", daemon=True).start()

    def beat(self) -> None:
        self._last = time.monotonic()

    def status(self) -> tuple[bool, str]:
        if self._last is None:
            return True, "ok: starting"
        age = time.monotonic() - self._last
        return (True, "ok") if age < STALE_SECONDS else (False, f"kopf's event loop silent for {age:.0f}s")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def build_registry(ctl: Controller, cert: ServingCert, health: Health | None = None,
                   on_serving: Callable[[], None] | None = None) -> kopf.OperatorRegistry:
    """kopf handlers, in a fresh registry (no global state at import time); `on_serving`
    runs each time admission answers at the registered address."""
    registry = kopf.OperatorRegistry()
    options = ctl.options
    port = options.webhook_port or free_port(options.webhook_address)
    # kopf reports its own address in the client config; only the port is used from it.
    host = WEBHOOK_HOST if options.webhook_address in ("0.0.0.0", "::") else options.webhook_address
    beats: list[asyncio.Task[None]] = []
    threads = ThreadPoolExecutor(ADMISSION_THREADS, thread_name_prefix="admission")

    async def offload(call: Callable[[], None]) -> None:
        await asyncio.get_running_loop().run_in_executor(threads, call)

    responder = review.Responder(lambda request: validate_pod(ctl, request), offload)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # handlers do not log to k8s Events; we post our own
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # one line per pod event is noise
        settings.watching.server_timeout = 300  # kopf's own watches (resource discovery)
        settings.admission.server = RegisteringWebhookServer(
            kube=ctl.kube, cert=cert, addr=options.webhook_address, host=host, port=port,
            service=options.webhook_service, responder=responder,
            # Workers start once admission answers at the registered address.
            on_registered=lambda: _serving(ctl, on_serving))

    @kopf.on.startup(registry=registry)
    async def heartbeat(**_: Any) -> None:
        if health is not None:
            beats.append(asyncio.get_running_loop().create_task(_beat(health)))

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # A fresh registry has none of kopf's default login handlers: hand kopf the
        # credentials our own client loaded from --kubeconfig.
        return connection_info(ctl.kube.configuration)

    @kopf.on.cleanup(registry=registry)
    def cleanup(**_: Any) -> None:
        for task in beats:
            task.cancel()
        threads.shutdown(wait=False, cancel_futures=True)
        ctl.stop()
        if options.webhook_service is None:
            install.remove_webhooks(ctl.kube, admission.CONFIGURATION_NAME)
        # Behind a Service the configurations stay: the next leader serves them (same CA, same Service).

    return registry


def validate_pod(ctl: Controller, request: review.Request) -> None:
    """The validating webhook: raises admission.Denied; on an admitted create, holds
    the pod's networks in use at once (not on dry run: the webhook declares
    sideEffects NoneOnDryRun)."""
    previous = request.old if request.operation == "UPDATE" else None
    admission.validate(request.pod, previous, request.user, ctl.access.may_use, ctl.attachment_network)
    if request.operation == "CREATE" and not request.dry_run:
        ctl.hold_references(request.pod)


def _serving(ctl: Controller, on_serving: Callable[[], None] | None) -> None:
    ctl.start()
    if on_serving is not None:
        on_serving()


async def _beat(health: Health) -> None:
    while True:
        health.beat()
        await asyncio.sleep(HEARTBEAT_SECONDS)


def connection_info(cfg: Any) -> kopf.ConnectionInfo:
    """kopf's credentials from a loaded kubernetes client Configuration.

    The client keeps a token under `api_key["BearerToken"]` (older ones under
    "authorization"), with its scheme as a prefix or already in the value; reading
    it runs an in-cluster config's refresh hook (the projected token rotates), and
    kopf's re-login after a 401 calls this again.
    """
    auth = cfg.get_api_key_with_prefix("BearerToken", alias="authorization") or ""
    scheme, _, token = auth.partition(" ")
    if not token:  # a bare token without a scheme
        scheme, token = ("Bearer", scheme) if scheme else ("", "")
    return kopf.ConnectionInfo(
        server=cfg.host, ca_path=cfg.ssl_ca_cert, insecure=not cfg.verify_ssl,
        certificate_path=cfg.cert_file, private_key_path=cfg.key_file,
        scheme=scheme or None, token=token or None,
    )


def run_kopf(registry: kopf.OperatorRegistry) -> None:
    """Serve admission and run until signalled."""
    kopf.run(registry=registry, clusterwide=True, standalone=True)
