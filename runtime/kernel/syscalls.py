"""The one way into the kernel: thin, errno-checked wrappers over libc.

Everything here raises :class:`SyscallError` carrying the operation, the
path and the errno.  The rest of the runtime calls these functions and never
ctypes directly, so unit tests can swap this module for a recording fake.

Numbers are x86_64 (and the generic table for the new mount API, which is the
same on every architecture since 5.2).  Facts worth knowing:

* ``pivot_root`` has no libc wrapper in glibc; it is called through
  ``syscall(2)``.  ``pivot_root(".", ".")`` stacks the old root under the new
  one at the same place, so a later ``umount2(".", MNT_DETACH)`` drops it
  without needing a directory for it inside the rootfs (runc does the same).
* ``mount_setattr`` with ``AT_RECURSIVE`` is the only way to make a whole
  mount tree read-only in one step (``rro``); plain ``MS_REMOUNT|MS_RDONLY``
  touches only the top mount.  It appeared in 5.12.
* ``MOUNT_ATTR_IDMAP`` needs a detached mount made by ``open_tree`` with
  ``OPEN_TREE_CLONE``; it is then attached with ``move_mount``.
"""

from __future__ import annotations

from .errors import SyscallError
from .lean import ffi, leanos

TYPE_CHECKING = False  # see runtime/records.py
if TYPE_CHECKING:
    from collections.abc import Callable

_libc = ffi.CDLL()
_syscall = _libc.syscall
_syscall.restype = ffi.c_long

# --- constants -------------------------------------------------------------

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_I_VERSION = 1 << 23
MS_LAZYTIME = 1 << 25

MNT_FORCE = 1
MNT_DETACH = 2

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_SYMLINK_NOFOLLOW = 0x100
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = leanos.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x00000004
MOVE_MOUNT_T_EMPTY_PATH = 0x00000040

MOUNT_ATTR_RDONLY = 0x00000001
MOUNT_ATTR_NOSUID = 0x00000002
MOUNT_ATTR_NODEV = 0x00000004
MOUNT_ATTR_NOEXEC = 0x00000008
MOUNT_ATTR__ATIME = 0x00000070  # the atime field: clear all of it, then set one of the three
MOUNT_ATTR_RELATIME = 0x00000000
MOUNT_ATTR_NOATIME = 0x00000010
MOUNT_ATTR_STRICTATIME = 0x00000020
MOUNT_ATTR_NODIRATIME = 0x00000080
MOUNT_ATTR_IDMAP = 0x00100000
MOUNT_ATTR_NOSYMFOLLOW = 0x00200000

SECCOMP_SET_MODE_FILTER = 1

_NR_PIVOT_ROOT = 155
_NR_SETNS = 308
_NR_SECCOMP = 317
_NR_OPEN_TREE = 428
_NR_MOVE_MOUNT = 429
_NR_MOUNT_SETATTR = 442
_NR_CLOSE_RANGE = 436
_NR_CAPGET = 125
_NR_CAPSET = 126


def _fail(op: str, target: str = "") -> SyscallError:
    return SyscallError(op, target, ffi.get_errno())


def _b(path: str | None) -> bytes | None:
    return None if path is None else leanos.fsencode(path)


# --- mounts ----------------------------------------------------------------

def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if _libc.mount(_b(source), _b(target), _b(fstype), ffi.c_ulong(flags), _b(data)) != 0:
        raise _fail(f"mount {fstype or ''} {source or ''} flags={flags:#x}".replace("  ", " "), target)


def umount2(target: str, flags: int = 0) -> None:
    if _libc.umount2(_b(target), flags) != 0:
        raise _fail("umount", target)


def pivot_root(new_root: str, put_old: str) -> None:
    if _syscall(_NR_PIVOT_ROOT, _b(new_root), _b(put_old)) != 0:
        raise _fail("pivot_root", new_root)


class _MountAttr(ffi.Structure):
    _fields_ = (
        ("attr_set", ffi.c_uint64),
        ("attr_clr", ffi.c_uint64),
        ("propagation", ffi.c_uint64),
        ("userns_fd", ffi.c_uint64),
    )


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = 0) -> None:
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    if _syscall(_NR_MOUNT_SETATTR, dirfd, _b(path), flags, ffi.byref(attr), ffi.sizeof(attr)) != 0:
        raise _fail("mount_setattr", path)


def open_tree(dirfd: int, path: str, flags: int) -> int:
    fd = _syscall(_NR_OPEN_TREE, dirfd, _b(path), flags)
    if fd < 0:
        raise _fail("open_tree", path)
    return int(fd)


def move_mount(from_fd: int, from_path: str, to_dirfd: int, to_path: str, flags: int) -> None:
    if _syscall(_NR_MOVE_MOUNT, from_fd, _b(from_path), to_dirfd, _b(to_path), flags) != 0:
        raise _fail("move_mount", to_path)


# --- namespaces ------------------------------------------------------------

def unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        raise _fail(f"unshare flags={flags:#x}")


def setns(fd: int, nstype: int, path: str = "") -> None:
    if _syscall(_NR_SETNS, fd, nstype) != 0:
        raise _fail("setns", path or f"fd {fd}")


def sethostname(name: str) -> None:
    raw = name.encode()
    if _libc.sethostname(raw, len(raw)) != 0:
        raise _fail("sethostname", name)


def setdomainname(name: str) -> None:
    raw = name.encode()
    if _libc.setdomainname(raw, len(raw)) != 0:
        raise _fail("setdomainname", name)


def personality(persona: int) -> None:
    if _libc.personality(ffi.c_ulong(persona)) == -1:
        raise _fail("personality", hex(persona))


# --- process attributes ------------------------------------------------------

def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    ret = _libc.prctl(option, ffi.c_ulong(arg2), ffi.c_ulong(arg3), ffi.c_ulong(arg4), ffi.c_ulong(arg5))
    if ret < 0:
        raise _fail(f"prctl option={option}")
    return int(ret)


class _Rlimit(ffi.Structure):
    _fields_ = (("soft", ffi.c_ulong), ("hard", ffi.c_ulong))


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """setrlimit with rlim_t's whole unsigned 64-bit range (RLIM_INFINITY is
    all ones), which Python's ``resource`` module cannot pass."""
    if _libc.setrlimit(resource, ffi.byref(_Rlimit(soft, hard))) != 0:
        raise _fail("setrlimit", f"resource {resource}")


class _CapHeader(ffi.Structure):
    _fields_ = (("version", ffi.c_uint32), ("pid", ffi.c_int))


class _CapData(ffi.Structure):
    _fields_ = (("effective", ffi.c_uint32), ("permitted", ffi.c_uint32), ("inheritable", ffi.c_uint32))


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the three capability sets of the calling thread (64-bit masks)."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i, shift in enumerate((0, 32)):
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _syscall(_NR_CAPSET, ffi.byref(hdr), data) != 0:
        raise _fail("capset")


def capget() -> tuple[int, int, int]:
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _syscall(_NR_CAPGET, ffi.byref(hdr), data) != 0:
        raise _fail("capget")
    eff = data[0].effective | (data[1].effective << 32)
    per = data[0].permitted | (data[1].permitted << 32)
    inh = data[0].inheritable | (data[1].inheritable << 32)
    return eff, per, inh


def seccomp_set_filter(program: bytes, flags: int = 0) -> None:
    """Load a classic-BPF seccomp program (an array of 8-byte sock_filter)."""
    count = len(program) // 8
    buf = ffi.string_buffer(program)

    class _Prog(ffi.Structure):
        _fields_ = (("len", ffi.c_ushort), ("filter", ffi.c_void_p))

    prog = _Prog(count, ffi.addressof(buf))
    if _syscall(_NR_SECCOMP, SECCOMP_SET_MODE_FILTER, flags, ffi.byref(prog)) != 0:
        raise _fail("seccomp(SET_MODE_FILTER)")


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    if _syscall(_NR_CLOSE_RANGE, first, last, flags) != 0:
        raise _fail("close_range")


CLOSE_RANGE_CLOEXEC = 4
F_GETFD = 1
F_SETFD = 2
FD_CLOEXEC = 1


def set_cloexec(fd: int) -> None:
    """Mark one fd close-on-exec with fcntl(2), which every seccomp profile
    allows (``posix.set_inheritable`` tries ioctl(FIOCLEX) first and gives
    up when a profile denies ioctl)."""
    flags = _libc.fcntl(fd, F_GETFD)
    if flags < 0 or (not flags & FD_CLOEXEC and _libc.fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0):
        raise _fail("fcntl(F_SETFD, FD_CLOEXEC)", str(fd))

AF_UNIX = 1
SOCK_SEQPACKET = 5
SOCK_CLOEXEC = leanos.O_CLOEXEC  # the same bit, by design of the socket API


def socketpair(domain: int, kind: int) -> tuple[int, int]:
    """socketpair(2) as two raw fds: for the callers that only read and
    write them, without the ``_socket`` module (~0.15 ms to import)."""
    fds = (ffi.c_int * 2)()
    if _libc.socketpair(domain, kind, 0, fds) != 0:
        raise _fail("socketpair")
    return int(fds[0]), int(fds[1])

# --- fork into a cgroup -------------------------------------------------------

_NR_CLONE3 = 435
CLONE_INTO_CGROUP = 0x200000000
_SIGCHLD = 17


class _CloneArgs(ffi.Structure):
    _fields_ = tuple((name, ffi.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size",
        "tls", "set_tid", "set_tid_size", "cgroup"))


# Bound like ctypes.PyDLL, so the GIL stays held across the call: the child
# comes back into the interpreter exactly as the parent left it, with no
# half-released lock to take again.
_clone3 = ffi.CDLL(hold_gil=True).syscall
_clone3.restype = ffi.c_long


def fork_into_cgroup(cgroup_fd: int) -> int:
    """fork(2) whose child is born inside the cgroup2 directory ``cgroup_fd``
    (clone3 with CLONE_INTO_CGROUP, Linux 5.7+).  Returns the child's pid in
    the parent and 0 in the child, like os.fork.

    Why: writing a pid into a cgroup2 ``cgroup.procs`` takes the kernel's
    cgroup_threadgroup_rwsem for writing, and that waits for an RCU grace
    period (about 10 ms here, on every container and every exec).  A child
    placed at birth only takes the same lock for reading, as any fork does.

    Only for a single-threaded caller that then stays in Python (the
    runtime's init stages): this is a raw fork, so CPython's and glibc's
    after-fork handlers do not run in the child.  Nothing they reset matters
    with one thread (no lock can be held by a thread that is gone), except
    that glibc's cached thread id stays the parent's until the child's own
    next fork or exec; the init stages never ask for it (no raise(3), no
    pthread_kill(3) on themselves)."""
    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=_SIGCHLD, cgroup=cgroup_fd)
    pid = _clone3(_NR_CLONE3, ffi.byref(args), ffi.sizeof(args))
    if pid < 0:
        raise _fail("clone3(CLONE_INTO_CGROUP)")
    return int(pid)


def prepare_execve(path: str, argv: list[str], env: list[str]) -> Callable[[], int]:
    """Return a zero-argument callable that calls execve(2) and, only if it
    fails, returns the errno.  All marshalling happens here, up front, so
    that nothing runs between a seccomp load and the exec."""
    c_path = leanos.fsencode(path)
    c_argv = (ffi.c_char_p * (len(argv) + 1))(*[leanos.fsencode(a) for a in argv], None)
    c_env = (ffi.c_char_p * (len(env) + 1))(*[leanos.fsencode(e) for e in env], None)
    fn = _libc.execve

    def call() -> int:
        fn(c_path, c_argv, c_env)
        return ffi.get_errno()

    return call


# --- path resolution -----------------------------------------------------------

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
RESOLVE_CACHED = 0x20

_NR_OPENAT2 = 437


class _OpenHow(ffi.Structure):
    _fields_ = (
        ("flags", ffi.c_uint64),
        ("mode", ffi.c_uint64),
        ("resolve", ffi.c_uint64),
    )


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2) (5.6+): the kernel enforces ``resolve`` (for example
    RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) over the whole path walk, so a
    symlink or ``..`` anywhere in ``path`` fails with ELOOP/EXDEV instead of
    escaping ``dirfd``."""
    how = _OpenHow(flags, mode, resolve)
    fd = _syscall(_NR_OPENAT2, dirfd, _b(path), ffi.byref(how), ffi.sizeof(how))
    if fd < 0:
        raise _fail("openat2", path)
    return int(fd)


# --- bpf(2): cgroup device programs ----------------------------------------------
# Only what a BPF_PROG_TYPE_CGROUP_DEVICE program needs (cgroups/v2/device_program.py).
# Each command takes its own prefix of ``union bpf_attr``; a shorter attr
# than the kernel's is zero-filled by the kernel, so each struct here holds
# just the fields the command reads.

_NR_BPF = 321
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2


class _BpfProgLoad(ffi.Structure):
    _fields_ = (
        ("prog_type", ffi.c_uint32), ("insn_cnt", ffi.c_uint32), ("insns", ffi.c_uint64),
        ("license", ffi.c_uint64), ("log_level", ffi.c_uint32), ("log_size", ffi.c_uint32),
        ("log_buf", ffi.c_uint64),
    )


class _BpfProgAttach(ffi.Structure):
    _fields_ = (
        ("target_fd", ffi.c_uint32), ("attach_bpf_fd", ffi.c_uint32), ("attach_type", ffi.c_uint32),
        ("attach_flags", ffi.c_uint32),
    )


class _BpfProgQuery(ffi.Structure):
    _fields_ = (
        ("target_fd", ffi.c_uint32), ("attach_type", ffi.c_uint32), ("query_flags", ffi.c_uint32),
        ("attach_flags", ffi.c_uint32), ("prog_ids", ffi.c_uint64), ("prog_cnt", ffi.c_uint32),
    )


class _BpfGetFdById(ffi.Structure):
    _fields_ = (("prog_id", ffi.c_uint32), ("next_id", ffi.c_uint32), ("open_flags", ffi.c_uint32))


def _bpf(cmd: int, attr: ffi.Structure, op: str, target: str) -> int:
    ret = _syscall(_NR_BPF, cmd, ffi.byref(attr), ffi.sizeof(attr))
    if ret < 0:
        raise _fail(op, target)
    return int(ret)


def bpf_prog_load(prog_type: int, insns: bytes, license: str, log_size: int = 0) -> tuple[int, str]:
    """Load a program; returns (fd, verifier log).  With ``log_size`` the
    verifier's log comes back (on failure too: SyscallError's detail)."""
    code = ffi.string_buffer(insns)
    lic = ffi.string_buffer(license.encode() + b"\0")
    log = ffi.string_buffer(b"\0" * log_size) if log_size else None
    attr = _BpfProgLoad(prog_type, len(insns) // 8, ffi.addressof(code), ffi.addressof(lic),
                        1 if log_size else 0, log_size, ffi.addressof(log) if log is not None else 0)
    ret = _syscall(_NR_BPF, BPF_PROG_LOAD, ffi.byref(attr), ffi.sizeof(attr))
    text = log.raw.split(b"\0", 1)[0].decode(errors="replace") if log is not None else ""
    if ret < 0:
        raise SyscallError("bpf prog load", "", ffi.get_errno(), text[-2000:])
    return int(ret), text


def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int, target: str = "") -> None:
    _bpf(BPF_PROG_ATTACH, _BpfProgAttach(target_fd, prog_fd, attach_type, flags), "bpf prog attach", target)


def bpf_prog_detach(target_fd: int, prog_fd: int, attach_type: int, target: str = "") -> None:
    _bpf(BPF_PROG_DETACH, _BpfProgAttach(target_fd, prog_fd, attach_type, 0), "bpf prog detach", target)


def bpf_prog_query(target_fd: int, attach_type: int, target: str = "", capacity: int = 64) -> list[int]:
    """Ids of the programs attached to ``target_fd`` itself (not inherited ones)."""
    ids = (ffi.c_uint32 * capacity)()
    attr = _BpfProgQuery(target_fd, attach_type, 0, 0, ffi.addressof(ids), capacity)
    _bpf(BPF_PROG_QUERY, attr, "bpf prog query", target)
    return [ids[i] for i in range(attr.prog_cnt)]


def bpf_prog_get_fd_by_id(prog_id: int) -> int:
    return _bpf(BPF_PROG_GET_FD_BY_ID, _BpfGetFdById(prog_id, 0, 0), "bpf prog get fd by id", str(prog_id))
