"""The CPython internals the start-up diet (runtime/kernel/lean/) relies on, checked one by one.

Each test states one fact about a private module and fails with a message
naming it, so a new interpreter that breaks one says which replacement to
mend before ``requires-python`` is widened (README.md there).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTE = "runtime/kernel/lean/README.md"


def pinned(fact: str, err: object) -> str:
    return (f"CPython {sys.version.split()[0]} breaks a fact the start-up diet relies on: {fact} ({err}). "
            f"Mend the replacement (see {NOTE}) before widening requires-python.")


def test_requires_python_admits_this_interpreter_and_no_untested_one() -> None:
    """pyproject's requires-python has an upper bound (the versions CI has run) and admits this interpreter."""
    text = (REPO / "pyproject.toml").read_text()
    found = re.search(r'^requires-python = ">=(\d+)\.(\d+),<(\d+)\.(\d+)"$', text, re.M)
    assert found, "requires-python needs a lower and an upper bound: the diet relies on CPython internals"
    low = (int(found[1]), int(found[2]))
    high = (int(found[3]), int(found[4]))
    assert low <= sys.version_info[:2] < high, pinned(f"requires-python >={low}, <{high}", sys.version)


def test_json_make_scanner_reads_a_context_and_scans_from_an_index() -> None:
    import _json

    class Context:
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        parse_constant = {"NaN": float("nan")}.__getitem__

    fact = "_json.make_scanner(context) returns scan(text, index) -> (value, end), StopIteration(index) if no value"
    try:
        scan = _json.make_scanner(Context())  # type: ignore[arg-type]
        assert scan('  {"a": [1, 2.5]} ', 2) == ({"a": [1, 2.5]}, 17), pinned(fact, "wrong answer")
    except TypeError as err:
        pytest.fail(pinned(fact, err))
    with pytest.raises(StopIteration) as stop:
        scan("   ", 3)
    assert stop.value.value == 3, pinned(fact, f"StopIteration({stop.value.value!r})")


def test_json_make_encoder_takes_nine_positional_arguments() -> None:
    import _json

    fact = ("_json.make_encoder(markers, default, encoder, indent, key_separator, item_separator, "
            "sort_keys, skipkeys, allow_nan) returns encode(obj, level) -> str chunks")
    doc = {"b": [1, 2.5, None, True, "é\n"], "a": {}}
    try:
        encode = _json.make_encoder({}, repr, _json.encode_basestring_ascii, None, ": ", ", ",
                                    False, False, True)
        out = "".join(encode(doc, 0))
    except TypeError as err:
        pytest.fail(pinned(fact, err))
    assert out == json.dumps(doc), pinned(fact, out)


def test_ctypes_private_names() -> None:
    """ffi builds its types from _SimpleCData codes and its functions from CFuncPtr with ctypes' flags."""
    import _ctypes

    for name in ("_SimpleCData", "CFuncPtr", "Structure", "POINTER", "dlopen", "addressof", "byref",
                 "get_errno", "sizeof", "FUNCFLAG_CDECL", "FUNCFLAG_USE_ERRNO", "FUNCFLAG_PYTHONAPI"):
        assert hasattr(_ctypes, name), pinned(f"_ctypes.{name} exists", "missing")
    flags = {"FUNCFLAG_CDECL": ctypes._FUNCFLAG_CDECL, "FUNCFLAG_USE_ERRNO": ctypes._FUNCFLAG_USE_ERRNO,
             "FUNCFLAG_PYTHONAPI": ctypes._FUNCFLAG_PYTHONAPI}
    for name, value in flags.items():
        assert getattr(_ctypes, name) == value, pinned(f"_ctypes.{name} is ctypes' flag", getattr(_ctypes, name))
    for code, theirs in (("i", ctypes.c_int), ("L", ctypes.c_ulong), ("P", ctypes.c_void_p), ("z", ctypes.c_char_p)):
        assert theirs._type_ == code, pinned(f"ctypes' {theirs.__name__} has type code {code!r}",  # type: ignore[attr-defined]
                                             theirs._type_)  # type: ignore[attr-defined]


def test_ctypes_binds_a_function_by_name_to_a_dlopen_handle() -> None:
    import _ctypes

    fact = "CFuncPtr((name, library)) binds a symbol of _ctypes.dlopen's handle, as ctypes.CDLL does"

    class Library:
        _handle = _ctypes.dlopen(None, 2)  # type: ignore[arg-type]

    class Func(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = ctypes.c_int

    try:
        getpid = Func(("getpid", Library()))  # type: ignore[arg-type]
        assert getpid() == os.getpid(), pinned(fact, "wrong answer")
    except (TypeError, AttributeError) as err:
        pytest.fail(pinned(fact, err))


def test_socket_accept_and_signal_and_posix() -> None:
    import _signal
    import _socket
    import posix
    import signal

    assert hasattr(_socket.socket, "_accept"), pinned("_socket.socket._accept exists (leansocket.accept)", "missing")
    assert _signal.SIGTERM == signal.SIGTERM and _signal.SIG_DFL == signal.SIG_DFL, pinned(
        "_signal's constants are signal's", _signal.SIGTERM)
    for name in ("open", "read", "write", "close", "kill", "waitpid", "fork", "listdir", "scandir", "strerror"):
        assert getattr(posix, name) is getattr(os, name), pinned(f"os.{name} is posix.{name} (leanos)", "differs")
