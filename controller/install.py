"""Installing the CRDs and the webhook configurations the controller depends on."""

from __future__ import annotations

import logging
import time

import yaml

from kube import AlreadyExists, Kube, NotFound, Obj, Resource
from kube.resources import CRDS, MUTATING_WEBHOOKS, VALIDATING_WEBHOOKS
from podnetwork.crds import CRD_DIR

log = logging.getLogger(__name__)


def _apply(kube: Kube, resource: Resource, obj: Obj) -> None:
    """Create, or replace what is there (this run's version of it wins)."""
    name = obj["metadata"]["name"]
    try:
        kube.create(resource, obj)
    except AlreadyExists:
        current = kube.get(resource, name)
        kube.replace(resource, name, {**obj, "metadata": {
            **obj["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}})


def install_crds(kube: Kube, timeout: float = 60.0) -> list[str]:
    """Create or update every CRD under podnetwork/crds and wait until each is Established."""
    applied = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        manifest = yaml.safe_load(path.read_text())
        _apply(kube, CRDS, manifest)
        applied.append(manifest["metadata"]["name"])
    deadline = time.monotonic() + timeout
    for name in applied:
        while not _established(kube, name):
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established after {timeout}s")
            time.sleep(0.2)
    return applied


def _established(kube: Kube, name: str) -> bool:
    conditions = (kube.get(CRDS, name).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def apply_webhooks(kube: Kube, mutating: Obj, validating: Obj) -> None:
    """Create or replace both webhook configurations (they carry this run's CA and port)."""
    for resource, obj in ((MUTATING_WEBHOOKS, mutating), (VALIDATING_WEBHOOKS, validating)):
        _apply(kube, resource, obj)
        log.info("registered %s %s", obj["kind"], obj["metadata"]["name"])


def remove_webhooks(kube: Kube, name: str) -> None:
    for resource in (MUTATING_WEBHOOKS, VALIDATING_WEBHOOKS):
        try:
            kube.delete(resource, name)
        except NotFound:
            pass  # never registered, or removed already
