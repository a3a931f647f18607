"""The few ctypes names the runtime calls C with (libc, libseccomp), made from ``_ctypes``.

Why not ``import ctypes``: its package module builds dozens of types, a
function-type cache and several callable prototypes at import (README.md
here has the cost), and create and exec, on every container's path, need a
dozen of its names.  The C types are the ``_SimpleCData`` subclasses ctypes
makes (the one-letter ``_type_`` code decides everything), and a foreign
function is a ``CFuncPtr`` subclass carrying the call flags, bound by name
to a ``dlopen`` handle: what ``ctypes.CDLL.__getattr__`` does.  Only Linux
on 64-bit targets is meant: ``c_long`` and ``c_ulong`` are 8 bytes, as
``c_uint64`` is.

tests/unit/test_ffi.py checks each type against ctypes' own;
tests/unit/test_lean_pins.py checks the ``_ctypes`` names this relies on.
"""

from __future__ import annotations

import _ctypes
from _ctypes import POINTER, Structure, addressof, byref, get_errno, sizeof

__all__ = [
    "CDLL", "POINTER", "Structure", "addressof", "byref", "c_char", "c_char_p", "c_int", "c_long", "c_uint",
    "c_uint32", "c_uint64", "c_ulong", "c_ushort", "c_void_p", "get_errno", "sizeof", "string_buffer",
]

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any


def _simple(name: str, code: str) -> Any:
    """A C scalar type as ctypes makes it: the ``_type_`` code decides size and conversion."""
    return type(name, (_ctypes._SimpleCData,), {"_type_": code})


c_int = _simple("c_int", "i")
c_uint32 = _simple("c_uint", "I")
c_uint = c_uint32  # as in ctypes: unsigned int is 32 bits on Linux
c_ushort = _simple("c_ushort", "H")
c_long = _simple("c_long", "l")
c_ulong = _simple("c_ulong", "L")
c_uint64 = c_ulong  # as in ctypes on a 64-bit Linux
c_void_p = _simple("c_void_p", "P")
c_char_p = _simple("c_char_p", "z")
c_char = _simple("c_char", "c")


def string_buffer(data: bytes) -> Any:
    """A mutable C copy of ``data`` (NUL bytes included) that stays put while referenced."""
    buf: Any = (c_char * len(data))()
    buf.raw = data
    return buf


_RTLD_NOW = 2


class CDLL:
    """A shared library, as ``ctypes.CDLL(name, use_errno=True)``: by default
    the process's own symbols (libc); with ``hold_gil``, as ``ctypes.PyDLL``:
    the GIL stays held across calls.  A library that cannot be loaded raises
    OSError, as ctypes does.  Functions take ``argtypes`` and ``restype`` as
    ctypes' do."""

    def __init__(self, name: str | None = None, *, hold_gil: bool = False) -> None:
        self._handle = _ctypes.dlopen(name, _RTLD_NOW)  # type: ignore[arg-type]  # dlopen(NULL): ourselves
        flags = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        if hold_gil:
            flags |= _ctypes.FUNCFLAG_PYTHONAPI

        class _FuncPtr(_ctypes.CFuncPtr):
            _flags_ = flags
            _restype_ = c_int

        self._funcptr = _FuncPtr

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        func = self._funcptr((name, self))  # type: ignore[arg-type]  # any object with a _handle
        setattr(self, name, func)
        return func
