"""JSON for the shim without importing `json`.

`json` imports `re` (and with it enum, functools, collections): a third of
the shim's start time once `site` is skipped (see cni/install.py). This uses
the same C scanner and string encoder `json` uses, so values, escapes and
number handling are the same; tests/cni/test_fuzz.py checks it against
`json` on arbitrary input. A parse error raises ValueError, as json's does.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_WHITESPACE = " \t\n\r"  # exactly json's insignificant whitespace


class _Context:
    """The attributes the C scanner reads (json.decoder.JSONDecoder's defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict[str, str] = {}


_scan = _json.make_scanner(_Context())


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _WHITESPACE:
        at += 1
    return at


def loads(text: str | bytes) -> Any:
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    start = _skip(text, 0)
    try:
        value, end = _scan(text, start)
    except StopIteration as err:
        raise ValueError(f"invalid JSON at offset {err.value}") from None
    if _skip(text, end) != len(text):
        raise ValueError(f"extra data after JSON at offset {end}")
    return value


def dumps(value: Any) -> str:
    """As json.dumps with its defaults (ensure_ascii, ", " and ": ")."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)}: {dumps(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return _json.encode_basestring_ascii(key)
    if key is None or isinstance(key, (bool, int, float)):
        return '"' + dumps(key) + '"'
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
