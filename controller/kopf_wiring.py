"""The kopf wiring: kopf serves the admission webhooks and runs the process's lifecycle.

kopf watches nothing here (the informers do); it answers admission, posts
no Events of its own, and calls back into the `Controller` at startup and
cleanup. Converting our errors into kopf's happens here, at the edge.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import kopf

from controller import admission, install
from controller.certs import ServingCert
from kube import Kube, Obj

if TYPE_CHECKING:
    from controller.operator import Controller

WEBHOOK_HOST = "127.0.0.1"


class RegisteringWebhookServer(kopf.WebhookServer):
    """kopf's server, which also registers our own webhook configurations once it listens
    (kopf's managed configurations cannot express matchConditions)."""

    def __init__(self, *, kube: Kube, cert: ServingCert, on_registered: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(certfile=str(cert.cert), pkeyfile=str(cert.key), cafile=str(cert.ca), **kwargs)
        self._kube = kube
        self._cert = cert
        self._on_registered = on_registered

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        async for client_config in super().__call__(fn):
            url = f"https://{WEBHOOK_HOST}:{self._port_of(client_config.get('url') or '')}"
            mutating, validating = admission.webhook_configurations(url, self._cert.ca_bundle())
            await asyncio.to_thread(install.apply_webhooks, self._kube, mutating, validating)
            self._on_registered()
            yield client_config

    @staticmethod
    def _port_of(url: str) -> int:
        return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind((WEBHOOK_HOST, 0))
        port: int = s.getsockname()[1]
        return port


def build_registry(ctl: Controller, cert: ServingCert) -> kopf.OperatorRegistry:
    """kopf handlers, in a fresh registry (no global state at import time)."""
    registry = kopf.OperatorRegistry()
    port = ctl.options.webhook_port or free_port()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # handlers do not log to k8s Events; we post our own
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # one line per pod event is noise
        settings.watching.server_timeout = 300  # kopf's own watches (resource discovery)
        settings.execution.max_workers = 16
        settings.admission.server = RegisteringWebhookServer(
            kube=ctl.kube, cert=cert, addr=WEBHOOK_HOST, host=WEBHOOK_HOST, port=port,
            # Workers start once admission answers at the registered address.
            on_registered=ctl.start)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # A fresh registry has none of kopf's default login handlers: hand kopf the
        # credentials our own client loaded from --kubeconfig.
        return connection_info(ctl.kube.configuration)

    @kopf.on.cleanup(registry=registry)
    def cleanup(**_: Any) -> None:
        ctl.stop()
        install.remove_webhooks(ctl.kube, admission.CONFIGURATION_NAME)

    @kopf.on.mutate("", "v1", "pods", id=admission.MUTATE_ID, operations=["CREATE"], registry=registry)
    def mutate_pod(body: Any, patch: Any, **_: Any) -> None:
        try:
            changes = admission.mutate(_plain(body))
        except admission.Denied as exc:
            raise kopf.AdmissionError(str(exc), code=exc.code) from None
        patch.update(changes)

    @kopf.on.validate("", "v1", "pods", id=admission.VALIDATE_ID, operations=["CREATE", "UPDATE"],
                      registry=registry)
    def validate_pod(*, body: Any, userinfo: Any, dryrun: bool, old: Any = None, operation: Any = None,
                     **_: Any) -> None:
        previous = _plain(old) if operation == "UPDATE" and old is not None else None
        try:
            admission.validate(_plain(body), previous, userinfo, ctl.access.may_use, ctl.attachment_network)
        except admission.Denied as exc:
            raise kopf.AdmissionError(str(exc), code=exc.code) from None
        if operation == "CREATE" and not dryrun:
            ctl.hold_references(_plain(body))

    return registry


def connection_info(cfg: Any) -> kopf.ConnectionInfo:
    """kopf's credentials from a loaded kubernetes client Configuration."""
    auth = (cfg.api_key or {}).get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return kopf.ConnectionInfo(
        server=cfg.host, ca_path=cfg.ssl_ca_cert, insecure=not cfg.verify_ssl,
        certificate_path=cfg.cert_file, private_key_path=cfg.key_file,
        scheme=scheme or None, token=token or None,
    )


def _plain(body: Any) -> Obj:
    return {k: body[k] for k in body}


def run_kopf(registry: kopf.OperatorRegistry) -> None:
    """Serve admission and run until signalled."""
    kopf.run(registry=registry, clusterwide=True, standalone=True)
