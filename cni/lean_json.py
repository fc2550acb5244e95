"""`json.loads` and `json.dumps` for the plugin's start: the same C scanner
and encoder, without importing the `json` package.

`import json` compiles regular expressions at import (json.decoder,
json.scanner, json.encoder), and `re` brings `enum`, `functools` and
`collections` with it: about 14 ms of the shim's 31 ms start on the machine
the CNI benchmark ran on (`python -X importtime`), paid by every ADD and DEL.
The regexes serve only the pure-Python fallbacks and whitespace skipping;
decoding and encoding are CPython's `_json`, which this module drives with the
same arguments `json.loads()` and `json.dumps()` give it.

Only the success path is fast: any input `_json` refuses, and any
interpreter without `_json`, goes to `json` itself, so results and errors
(messages included) are `json`'s exactly. tests/cni/test_lean_json.py holds
the two equal. Can go when `json` stops importing `re` at import.
"""

from __future__ import annotations

TYPE_CHECKING = False  # annotation-only imports: see cni.spec on start time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_WHITESPACE = " \t\n\r"  # JSON's (RFC 8259 section 2), as json.decoder's WHITESPACE


class _Context:
    """What json.decoder.JSONDecoder() gives the C scanner by default."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


def _unserializable(o: object) -> Any:
    raise TypeError  # json.dumps, called again, raises its own error


def _encoder() -> Callable[[object, int], Any]:
    """A fresh C encoder (its circular-reference markers are per call) with
    json.dumps()'s defaults: check_circular, ensure_ascii, no indent, ": "
    and ", ", unsorted, no skipkeys, allow_nan."""
    return _json.make_encoder({}, _unserializable, _json.encode_basestring_ascii, None, ": ", ", ",
                              False, False, True)


_scan: Callable[[str, int], tuple[Any, int]] | None
try:
    import _json

    # typeshed types the context as a scanner; any object with its attributes does.
    _scan = _json.make_scanner(_Context())  # type: ignore[arg-type]
    _encoder()
except (ImportError, AttributeError, TypeError):  # another interpreter, or another _json
    _scan = None


def loads(doc: str | bytes | bytearray) -> Any:
    """json.loads(doc)."""
    if _scan is not None and isinstance(doc, (str, bytes, bytearray)):
        try:
            # A BOM, UTF-16 or UTF-32 (json.detect_encoding's other cases)
            # fails here: U+FEFF and NUL are not JSON outside strings, nor
            # NUL inside one; json.loads below decodes them.
            text = doc if isinstance(doc, str) else doc.decode("utf-8", "surrogatepass")
            start = len(text) - len(text.lstrip(_WHITESPACE))
            value, end = _scan(text, start)
            if not text[end:].strip(_WHITESPACE):
                return value
        # UnicodeDecodeError is a ValueError. SystemError: _json of Python
        # 3.11 raises its errors as json.decoder.JSONDecodeError, found only
        # once json is imported (3.12 imports it), and fails without it.
        except (ValueError, StopIteration, RecursionError, SystemError):
            pass  # json.loads below says what is wrong
    import json

    return json.loads(doc)


def dumps(value: Any) -> str:
    """json.dumps(value)."""
    if _scan is not None:
        try:
            return "".join(_encoder()(value, 0))
        except (TypeError, ValueError, RecursionError):
            pass
    import json

    return json.dumps(value)
