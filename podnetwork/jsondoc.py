"""Decoding an annotation's JSON and checking it against its schema, with readable errors."""

from __future__ import annotations

import json
from typing import Any

import jsonschema


def decode(text: str, schema: dict[str, Any], where: str) -> tuple[Any, list[str]]:
    """(value, errors): each error prefixed by `where` and the path of the bad element."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [f"{where}: invalid JSON ({exc.msg})"]
    except RecursionError:  # json's own limit, not a ValueError: the caller would see a crash
        return None, [f"{where}: invalid JSON (nested too deep)"]
    errors = [
        f"{where}{''.join(f'[{p}]' for p in e.absolute_path)}: {e.message}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(raw)
    ]
    return raw, errors
