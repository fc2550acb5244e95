"""Pods as the suite writes them: the networks list travels in an annotation."""

from __future__ import annotations

import json
from typing import Any

from features import NETWORKS_ANNOTATION


def pod(name: str, networks: list[dict[str, Any]] | str | None, **spec: Any) -> dict[str, Any]:
    """A pod body; `networks` is the KEP's list (or raw annotation text)."""
    metadata: dict[str, Any] = {"name": name}
    if networks is not None:
        text = networks if isinstance(networks, str) else json.dumps(networks)
        metadata["annotations"] = {NETWORKS_ANNOTATION: text}
    body_spec: dict[str, Any] = {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
    body_spec.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body_spec}
