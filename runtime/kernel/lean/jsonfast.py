"""JSON in and out through the C accelerator ``_json``, without the ``json`` package.

Why: ``import json`` is costly (README.md here), because json.decoder,
json.scanner and json.encoder import ``re`` (and ``re`` imports ``enum``,
``functools`` and ``collections``).  Those regexes only skip whitespace and
serve the pure-Python fallbacks; the C scanner and encoder, which ``json``
itself uses whenever they exist, need none of them.  Every container would
pay it three times (create, start, delete), so the hot paths go through here.

Facts this relies on (CPython 3.11's Modules/_json.c):

* ``_json.make_scanner(ctx)`` reads ``strict``, ``object_hook``,
  ``object_pairs_hook``, ``parse_float``, ``parse_int`` and ``parse_constant``
  off ``ctx``; with ``float``/``int`` it parses numbers natively.  The scanner
  is called as ``scan(text, index)`` and returns ``(value, end)``; it raises
  StopIteration(index) where no value starts, and JSONDecodeError (importing
  json.decoder then, which is fine on an error path) for a malformed one.
* ``_json.make_encoder(markers, default, encoder, indent, key_separator,
  item_separator, sort_keys, skipkeys, allow_nan)`` returns a callable
  ``(obj, level)`` giving a sequence of str chunks.  It only writes one
  line; ``dumps(indent=...)`` lays out the nesting itself.

The output is byte for byte ``json.dumps``' with its defaults, and parsing
accepts and rejects what ``json.loads`` does (tests/unit/test_jsonfast.py
compares them).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _ScanContext:
    # The attributes _json.make_scanner reads, as json.JSONDecoder() has them.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_scan = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]  # typeshed wants a JSONDecoder; these attributes are all it reads


def _default(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


class JSONError(ValueError):
    """Malformed JSON: the message says where, as json's errors do."""


def loads(text: str | bytes) -> Any:
    """Parse one JSON document (str, or UTF-8 bytes), as json.loads does."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8-sig" if text[:3] == b"\xef\xbb\xbf" else "utf-8")
    elif text.startswith("\ufeff"):
        raise JSONError("Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as stop:
        raise JSONError(f"Expecting value: char {stop.value}") from None
    rest = len(text) - len(text[end:].lstrip(_WHITESPACE))
    if rest != len(text):
        raise JSONError(f"Extra data: char {rest}")
    return value


def load_file(path: str) -> Any:
    """Read and parse a JSON file."""
    with open(path, "rb") as f:
        return loads(f.read())


def dumps(obj: object, indent: int | str | None = None, compact: bool = False) -> str:
    """Serialize as json.dumps(obj, indent=indent) does with its other defaults
    (ASCII; ", " and ": " on one line, "," and ": " when indented);
    ``compact``: as json.dumps(obj, separators=(",", ":")), on one line."""
    # A fresh encoder each time, as json does: its markers dict (the cycle
    # check) is left dirty by an encoding that fails half-way.
    key_sep, item_sep = (":", ",") if compact else (": ", ", ")
    encode = _json.make_encoder({}, _default, _json.encode_basestring_ascii, None, key_sep, item_sep, False, False, True)
    if indent is None or compact:
        return "".join(encode(obj, 0))
    step = " " * indent if isinstance(indent, int) else indent
    out: list[str] = []
    _indented(obj, encode, step, "\n", out, set())
    return "".join(out)


def _indented(obj: object, encode: Any, step: str, newline: str, out: list[str], active: set[int]) -> None:
    # The C encoder only writes one line, so nesting is laid out here and
    # everything else (strings, numbers, constants) is still the C encoder's.
    if isinstance(obj, dict):
        items: Any = obj.items()
        opening, closing = "{", "}"
    elif isinstance(obj, (list, tuple)):
        items = obj
        opening, closing = "[", "]"
    else:
        out.append("".join(encode(obj, 0)))
        return
    if not obj:
        out.append(opening + closing)
        return
    if id(obj) in active:
        raise ValueError("Circular reference detected")
    active.add(id(obj))
    inner = newline + step
    out.append(opening)
    for i, item in enumerate(items):
        out.append(("," if i else "") + inner)
        if opening == "{":
            key, item = item
            out.append("".join(encode(key if isinstance(key, str) else _key(key), 0)) + ": ")
        _indented(item, encode, step, inner, out, active)
    out.append(newline + closing)
    active.discard(id(obj))


def _key(key: object) -> str:
    # json's rules for non-string keys.
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, (int, float)):
        return "".join(_json.make_encoder({}, _default, _json.encode_basestring_ascii, None, ": ", ", ",
                                          False, False, True)(key, 0))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
