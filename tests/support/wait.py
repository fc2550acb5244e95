"""The one way tests wait for the cluster or the kernel to reach a state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from kube import Kube, Resource

T = TypeVar("T")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", kind="ServiceAccount")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.2) -> T:
    """Poll `probe` until it returns something truthy and return that; fail naming `what`
    and the last value seen, so a timeout says what was there instead."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def default_service_account(kube: Kube, namespace: str, timeout: float = 60.0) -> None:
    """Wait for the service-account controller to make `default` in a new namespace:
    pods are refused there until it has."""
    wait_for(f"the default service account of {namespace}",
             lambda: kube.find(SERVICE_ACCOUNTS, "default", namespace), timeout=timeout)
