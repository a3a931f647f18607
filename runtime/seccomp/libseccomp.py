"""ctypes binding to the parts of libseccomp (>= 2.5) used to build a filter.

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

import ctypes
import errno as _errno
import os

from ..kernel.errors import RuntimeFault, SyscallError, Unsupported

NR_SCMP_ERROR = -1

# enum scmp_filter_attr
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_CTL_OPTIMIZE = 8

_SONAME = "libseccomp.so.2"


class ArgCmp(ctypes.Structure):
    """``struct scmp_arg_cmp``."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


def _load() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(_SONAME)
    except OSError as err:
        raise Unsupported("load libseccomp", _SONAME, "install libseccomp2 to use linux.seccomp") from err
    ctx = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_init.restype = ctx
    lib.seccomp_release.argtypes = [ctx]
    lib.seccomp_release.restype = None
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_add.argtypes = [ctx, ctypes.c_uint32]
    lib.seccomp_arch_add.restype = ctypes.c_int
    lib.seccomp_attr_set.argtypes = [ctx, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_attr_set.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [ctx, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ArgCmp)]
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_export_bpf.argtypes = [ctx, ctypes.c_int]
    lib.seccomp_export_bpf.restype = ctypes.c_int
    lib.seccomp_version.argtypes = []
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    return lib


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
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
        fd = os.memfd_create("dockyard-seccomp", os.MFD_CLOEXEC)
        try:
            self._check(self._lib.seccomp_export_bpf(self._ctx, fd), "seccomp_export_bpf", "memfd")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)
