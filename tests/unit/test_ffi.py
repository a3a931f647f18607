"""runtime/kernel/lean/ffi.py: the ctypes names made from _ctypes behave as ctypes' own."""

from __future__ import annotations

import ctypes
import errno
import os

import pytest
from fresh_interpreter import run_fresh
from dockyard.runtime.kernel.lean import ffi



@pytest.mark.parametrize(("ours", "theirs"), [
    (ffi.c_int, ctypes.c_int), (ffi.c_uint32, ctypes.c_uint32), (ffi.c_ushort, ctypes.c_ushort),
    (ffi.c_long, ctypes.c_long), (ffi.c_ulong, ctypes.c_ulong), (ffi.c_uint64, ctypes.c_uint64),
    (ffi.c_void_p, ctypes.c_void_p), (ffi.c_char_p, ctypes.c_char_p), (ffi.c_char, ctypes.c_char),
])
def test_types_match_ctypes(ours: type, theirs: type) -> None:
    assert ffi.sizeof(ours) == ctypes.sizeof(theirs)
    assert ctypes.alignment(ours) == ctypes.alignment(theirs)
    assert ours._type_ == theirs._type_  # type: ignore[attr-defined]


def test_structure_layout_matches_ctypes() -> None:
    class Ours(ffi.Structure):
        _fields_ = (("a", ffi.c_ushort), ("b", ffi.c_void_p), ("c", ffi.c_uint32))

    class Theirs(ctypes.Structure):
        _fields_ = (("a", ctypes.c_ushort), ("b", ctypes.c_void_p), ("c", ctypes.c_uint32))

    assert ffi.sizeof(Ours) == ctypes.sizeof(Theirs)
    assert [Ours.a.offset, Ours.b.offset, Ours.c.offset] == [Theirs.a.offset, Theirs.b.offset, Theirs.c.offset]


def test_libc_calls_return_values_and_errno() -> None:
    libc = ffi.CDLL()
    assert libc.getpid() == os.getpid()
    libc.syscall.restype = ffi.c_long
    assert libc.syscall(39) == os.getpid()  # SYS_getpid, through the long-returning syscall(2)
    assert libc.close(-1) == -1
    assert ffi.get_errno() == errno.EBADF
    # bytes go in as char*, None as NULL
    assert libc.access(b"/", os.F_OK) == 0
    assert libc.access(b"/no/such/path", os.F_OK) == -1 and ffi.get_errno() == errno.ENOENT


def test_string_buffer_keeps_nul_bytes_and_has_an_address() -> None:
    data = b"ab\x00cd\x00"
    buf = ffi.string_buffer(data)
    assert buf.raw == data and ffi.sizeof(buf) == len(data)
    assert ctypes.string_at(ffi.addressof(buf), len(data)) == data


def test_char_p_arrays_for_execve() -> None:
    argv = (ffi.c_char_p * 3)(b"a", b"bc", None)
    assert [argv[0], argv[1], argv[2]] == [b"a", b"bc", None]


def test_held_gil_functions_work_and_ctypes_stays_unloaded() -> None:
    """What the runtime loads: _ctypes, never the ctypes package."""
    out = run_fresh(
        "from dockyard.runtime.kernel import syscalls\n"
        "from dockyard.runtime.kernel.lean.ffi import CDLL\n"
        "import os\n"
        "assert CDLL(hold_gil=True).getpid() == os.getpid()\n"
        "print('ctypes' in sys.modules)\n"
    )
    assert out.strip() == "False"
