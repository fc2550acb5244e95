"""The network-status annotation the node agent writes once interfaces exist."""

from __future__ import annotations

from typing import Any

from podnetwork.jsondoc import decode
from podnetwork.names import NETWORK_STATUS_ANNOTATION

NETWORK_STATUS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": NETWORK_STATUS_ANNOTATION,
    "type": "array",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["podNetworkName", "interfaceName", "ips"],
        "properties": {
            "podNetworkName": {"type": "string", "minLength": 1},
            "podNetworkAttachmentName": {"type": "string", "minLength": 1},
            "interfaceName": {"type": "string", "minLength": 1, "maxLength": 15},
            "ips": {"type": "array", "items": {"type": "string"}},
            "mac": {"type": "string", "pattern": "^([0-9a-f]{2}:){5}[0-9a-f]{2}$"},
            "gateways": {"type": "array", "items": {"type": "string"}},
            "default": {"type": "boolean"},
        },
    },
}


def network_status_errors(text: str) -> list[str]:
    """Every schema error of a network-status annotation value, each with its path."""
    _, errors = decode(text, NETWORK_STATUS_SCHEMA, f"annotation {NETWORK_STATUS_ANNOTATION}")
    return errors
