"""Typed work keys: what a worker converges, one frozen value per object kind.

The queue deduplicates by value, so two events for one pod collapse into one
`Pod(namespace, name)`; the worker dispatches on the key's type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pod:
    """Validate a gated pod's networks, allocate, lift the gate (or free a finished pod's addresses)."""

    namespace: str
    name: str


@dataclass(frozen=True)
class Release:
    """Free every address a deleted pod held (by uid: the pod object is gone)."""

    uid: str


@dataclass(frozen=True)
class Network:
    """A PodNetwork's conditions and in-use finalizer; recreate `default`."""

    name: str


@dataclass(frozen=True)
class Attachment:
    """A PodNetworkAttachment's conditions and in-use finalizer."""

    namespace: str
    name: str


@dataclass(frozen=True)
class Params:
    """A NetworkParams' validity and network id."""

    name: str


@dataclass(frozen=True)
class Service:
    """A Service's VIP and EndpointSlices on its secondary network."""

    namespace: str
    name: str


@dataclass(frozen=True)
class Policy:
    """A NetworkPolicy on a secondary network: refused (an Event) where it cannot apply."""

    namespace: str
    name: str


WorkKey = Pod | Release | Network | Attachment | Params | Service | Policy
