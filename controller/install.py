"""Installing the CRDs and the webhook configurations the controller depends on."""

from __future__ import annotations

import logging
import time
from typing import Any

import yaml

from controller.kube import Kube, is_status
from podnetwork.crds import CRD_DIR

log = logging.getLogger(__name__)


def install_crds(kube: Kube, timeout: float = 60.0) -> list[str]:
    """Create or update every CRD under podnetwork/crds and wait until each is Established."""
    applied = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        manifest = yaml.safe_load(path.read_text())
        name = manifest["metadata"]["name"]
        try:
            kube.ext.create_custom_resource_definition(manifest)
        except Exception as exc:
            if not is_status(exc, 409):
                raise
            current = kube.ext.read_custom_resource_definition(name)
            manifest["metadata"]["resourceVersion"] = current.metadata.resource_version
            kube.ext.replace_custom_resource_definition(name, manifest)
        applied.append(name)
    deadline = time.monotonic() + timeout
    for name in applied:
        while not _established(kube, name):
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established after {timeout}s")
            time.sleep(0.2)
    return applied


def _established(kube: Kube, name: str) -> bool:
    crd = kube.ext.read_custom_resource_definition(name)
    return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])


def apply_webhooks(kube: Kube, mutating: dict[str, Any], validating: dict[str, Any]) -> None:
    """Create or replace both webhook configurations (they carry this run's CA and port)."""
    for obj, create, read, replace in (
        (mutating, kube.admission.create_mutating_webhook_configuration,
         kube.admission.read_mutating_webhook_configuration,
         kube.admission.replace_mutating_webhook_configuration),
        (validating, kube.admission.create_validating_webhook_configuration,
         kube.admission.read_validating_webhook_configuration,
         kube.admission.replace_validating_webhook_configuration),
    ):
        name = obj["metadata"]["name"]
        try:
            create(obj)
        except Exception as exc:
            if not is_status(exc, 409):
                raise
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": read(name).metadata.resource_version}}
            replace(name, obj)
        log.info("registered %s %s", obj["kind"], name)


def remove_webhooks(kube: Kube, name: str) -> None:
    for delete in (kube.admission.delete_mutating_webhook_configuration,
                   kube.admission.delete_validating_webhook_configuration):
        try:
            delete(name)
        except Exception as exc:
            if not is_status(exc, 404):
                raise
