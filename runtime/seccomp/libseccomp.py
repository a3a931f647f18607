"""A binding to the parts of libseccomp (>= 2.5) used to build a filter,
through the runtime's one FFI (kernel/lean/ffi.py).

Why ffi and not ctypes, as this module once used: create compiles the filter
of every container with a seccomp profile (RuntimeDefault, or a Localhost
one), on its start path, and ``import ctypes`` was then create's costliest
import (kernel/lean/README.md); the runtime has ffi loaded already for its
syscalls, and one FFI means one set of facts to pin.

Only the runtime's parent process imports this module: it builds the filter
and exports it as classic BPF; the container's init loads those bytes with a
bare seccomp(2) and never maps libseccomp.  Nothing here touches kernel state:
``seccomp_load`` is deliberately not bound.

Facts about libseccomp this relies on:

* Its functions return ``-errno`` (not -1 with errno set).
* ``seccomp_init`` adds the native architecture; adding it again through
  ``seccomp_arch_add`` fails with ``-EEXIST``, which is harmless.
* ``seccomp_syscall_resolve_name`` resolves for the native architecture but
  also knows "pseudo" syscall numbers (negative, below -1) for names that
  exist only on other architectures (``socketcall``); rules added with those
  are translated for each architecture of the filter.  ``__NR_SCMP_ERROR``
  (-1) means no architecture knows the name.
* ``seccomp_export_bpf`` writes the program to an fd.  A memfd never blocks
  however large the program is, unlike a pipe whose reader is ourselves.
"""

from __future__ import annotations

import errno as _errno

from ..kernel.errors import RuntimeFault, SyscallError, Unsupported
from ..kernel.lean import ffi, leanos

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

NR_SCMP_ERROR = -1

# enum scmp_filter_attr
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_CTL_OPTIMIZE = 8

_SONAME = "libseccomp.so.2"


class ArgCmp(ffi.Structure):
    """``struct scmp_arg_cmp``."""

    _fields_ = (("arg", ffi.c_uint), ("op", ffi.c_int), ("datum_a", ffi.c_uint64), ("datum_b", ffi.c_uint64))


class _Version(ffi.Structure):
    _fields_ = (("major", ffi.c_uint), ("minor", ffi.c_uint), ("micro", ffi.c_uint))


def _load() -> Any:
    try:
        lib = ffi.CDLL(_SONAME)
    except OSError as err:
        raise Unsupported("load libseccomp", _SONAME, "install libseccomp2 to use linux.seccomp") from err
    ctx = ffi.c_void_p
    lib.seccomp_init.argtypes = [ffi.c_uint32]
    lib.seccomp_init.restype = ctx
    lib.seccomp_release.argtypes = [ctx]
    lib.seccomp_release.restype = None
    lib.seccomp_arch_resolve_name.argtypes = [ffi.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ffi.c_uint32
    lib.seccomp_arch_add.argtypes = [ctx, ffi.c_uint32]
    lib.seccomp_arch_add.restype = ffi.c_int
    lib.seccomp_attr_set.argtypes = [ctx, ffi.c_int, ffi.c_uint32]
    lib.seccomp_attr_set.restype = ffi.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ffi.c_char_p]
    lib.seccomp_syscall_resolve_name.restype = ffi.c_int
    lib.seccomp_rule_add_array.argtypes = [ctx, ffi.c_uint32, ffi.c_int, ffi.c_uint, ffi.POINTER(ArgCmp)]
    lib.seccomp_rule_add_array.restype = ffi.c_int
    lib.seccomp_export_bpf.argtypes = [ctx, ffi.c_int]
    lib.seccomp_export_bpf.restype = ffi.c_int
    lib.seccomp_version.argtypes = []
    lib.seccomp_version.restype = ffi.POINTER(_Version)
    return lib


_lib: Any = None


def library() -> Any:
    """The loaded libseccomp, loaded on first use."""
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


def version() -> tuple[int, int, int]:
    v = library().seccomp_version().contents
    return int(v.major), int(v.minor), int(v.micro)


def arch_token(name: str) -> int:
    """libseccomp's token for an architecture name, 0 if it does not know it."""
    return int(library().seccomp_arch_resolve_name(name.encode()))


def syscall_number(name: str) -> int:
    """The syscall number (or pseudo number) of ``name``; NR_SCMP_ERROR if
    no architecture known to libseccomp has it."""
    return int(library().seccomp_syscall_resolve_name(name.encode()))


class Filter:
    """A libseccomp filter context; use as a context manager so it is always
    released."""

    def __init__(self, default_action: int) -> None:
        self._lib = library()
        ctx = self._lib.seccomp_init(default_action)
        if not ctx:
            raise RuntimeFault("seccomp_init", f"default action {default_action:#x}", "libseccomp refused it")
        self._ctx: int | None = ctx

    def __enter__(self) -> Filter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._ctx is not None:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None

    def _check(self, rc: int, op: str, target: str) -> None:
        if rc < 0:
            raise SyscallError(op, target, -rc)

    def set_attr(self, attr: int, value: int) -> None:
        self._check(self._lib.seccomp_attr_set(self._ctx, attr, value), f"seccomp_attr_set attr={attr}", str(value))

    def add_arch(self, token: int, name: str) -> None:
        rc = self._lib.seccomp_arch_add(self._ctx, token)
        if rc == -_errno.EEXIST:
            return
        self._check(rc, "seccomp_arch_add", name)

    def add_rule(self, action: int, syscall: int, conditions: list[ArgCmp], name: str) -> None:
        array = (ArgCmp * len(conditions))(*conditions) if conditions else None
        rc = self._lib.seccomp_rule_add_array(self._ctx, action, syscall, len(conditions), array)
        self._check(rc, "seccomp_rule_add", name)

    def export_bpf(self) -> bytes:
        fd = leanos.memfd_create("dockyard-seccomp", leanos.MFD_CLOEXEC)
        try:
            self._check(self._lib.seccomp_export_bpf(self._ctx, fd), "seccomp_export_bpf", "memfd")
            size = leanos.lseek(fd, 0, leanos.SEEK_END)
            return leanos.pread(fd, size, 0)
        finally:
            leanos.close(fd)
