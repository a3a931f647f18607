"""Persistent network namespaces: a netns pinned by a bind mount on a file.

Facts about network namespaces this module relies on:

* A namespace lives while anything refers to it: a process, an open fd on
  ``/proc/<pid>/ns/net``, or a bind mount of that file.  Binding it onto an
  empty file (what ``ip netns add`` does) keeps it alive with no process in
  it, so the pod's network outlives the pause container and the CNI plugins
  can be handed a path (``CNI_NETNS``).
* ``unshare(CLONE_NEWNET)`` moves only the calling *thread* into a new
  namespace.  The daemon is multi-threaded (asyncio's default executor,
  grpc's threads), and a thread pool would later hand that thread to
  unrelated work, so the unshare happens in a forked child: it is
  single-threaded, its namespace change dies with it, and the bind mount it
  made stays (the mount namespace is the daemon's).
* After ``fork()`` in a threaded process only async-signal-safe work is
  truly safe.  The child here calls two syscalls through ctypes, writes one
  line to a pipe and leaves with ``os._exit``: no imports, no logging, no
  locks another thread could have held.
* Unmounting the bind mount drops the reference; ``MNT_DETACH`` so that a
  process still holding the mount busy (a plugin mid-call) cannot make
  removal fail.  A bind mount can be stacked twice on the same file by a
  buggy caller, so removal unmounts until the kernel says EINVAL.
* Whether a path holds a netns is asked of the kernel: ``ioctl(NS_GET_NSTYPE)``
  on an fd of a namespace file answers ``CLONE_NEWNET``; on a plain file it
  fails with ENOTTY.  That tells "pinned netns" from "stale empty file left
  by a crash or a reboot" without parsing mountinfo.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable

from dockyard.cri import errors
from dockyard.runtime import syscalls
from dockyard.runtime.errors import SyscallError

NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3)


class NetnsError(errors.Internal):
    """A netns operation failed; carries ``op``, ``path`` and ``errno``."""

    def __init__(self, op: str, path: str, err: int, detail: str = "") -> None:
        self.op = op
        self.path = path
        self.errno = err
        text = f"{op} {path}"
        if detail:
            text += f": {detail}"
        if err:
            text += f": {os.strerror(err)} ({errno.errorcode.get(err, err)})"
        super().__init__(text)


def create(path: str) -> None:
    """Make a new network namespace and pin it at ``path`` (a new file).

    Raises AlreadyExists when ``path`` already holds a namespace; a stale
    plain file there (from a crash) is reused.
    """
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, mode=0o711, exist_ok=True)
    if is_netns(path):
        raise errors.AlreadyExists(f"network namespace {path} exists already")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444)
    except OSError as err:
        raise NetnsError("create file", path, err.errno or 0) from err
    os.close(fd)
    try:
        _run_in_child(path)
    except BaseException:
        _unlink(path)
        raise


def _run_in_child(path: str) -> None:
    def pin() -> bytes:
        syscalls.unshare(syscalls.CLONE_NEWNET)
        syscalls.mount("/proc/thread-self/ns/net", path, None, syscalls.MS_BIND)
        return b""

    in_forked_child(pin, "create netns at", path)


def in_forked_child(body: Callable[[], bytes], op: str, target: str) -> bytes:
    """Run ``body`` in a forked, single-threaded child and return its bytes.

    ``body`` may raise SyscallError or OSError; either comes back as a
    NetnsError naming ``op``/``target`` and the errno.  Nothing the child does
    to its own namespaces reaches the caller's threads.
    """
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except OSError as err:
        os.close(read_end)
        os.close(write_end)
        raise NetnsError(f"fork to {op}", target, err.errno or 0) from err
    if pid == 0:  # pragma: no cover - runs in the forked child
        try:
            try:
                report = b"0" + body()
            except SyscallError as err:
                report = f"1{err.errno} {err.op}".encode()
            except OSError as err:
                report = f"1{err.errno or 0} {op}".encode()
            view = memoryview(report)
            while view:
                view = view[os.write(write_end, view):]
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        report = _read_all(read_end)
    finally:
        os.close(read_end)
        _reap(pid)
    # The pipe, not the exit status, carries the outcome: a subreaper sharing
    # this process (a test harness) may reap the child before we do.
    if report[:1] == b"0":
        return report[1:]
    if report[:1] == b"1":
        number, _, what = report[1:].decode(errors="replace").partition(" ")
        raise NetnsError(f"{op} ({what})", target, int(number) if number.isdigit() else 0)
    raise NetnsError(op, target, 0, "child died without reporting")


def remove(path: str) -> None:
    """Unpin and delete ``path``; a missing path or a plain file is fine."""
    for _ in range(16):
        try:
            syscalls.umount2(path, syscalls.MNT_DETACH)
        except SyscallError as err:
            if err.errno in (errno.EINVAL, errno.ENOENT):
                break  # not (or no longer) a mount point
            raise NetnsError("unmount netns", path, err.errno) from err
    _unlink(path)


def is_netns(path: str) -> bool:
    """True when ``path`` is a pinned network namespace (not a stale file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as err:
        raise NetnsError("open", path, err.errno or 0) from err
    try:
        return int(fcntl.ioctl(fd, NS_GET_NSTYPE)) == syscalls.CLONE_NEWNET
    except OSError as err:
        if err.errno in (errno.ENOTTY, errno.EINVAL):
            return False
        raise NetnsError("ioctl NS_GET_NSTYPE", path, err.errno or 0) from err
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise NetnsError("unlink", path, err.errno or 0) from err


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # already reaped by a subreaper thread; the pipe said what happened
