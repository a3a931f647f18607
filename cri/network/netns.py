"""Persistent network namespaces: a netns pinned by a bind mount on a file.

Facts about network namespaces this module relies on:

* A namespace lives while anything refers to it: a process, an open fd on
  ``/proc/<pid>/ns/net``, or a bind mount of that file.  Binding it onto an
  empty file (what ``ip netns add`` does) keeps it alive with no process in
  it, so the pod's network outlives the pause container and the CNI plugins
  can be handed a path (``CNI_NETNS``).
* The network namespace is a per-*thread* attribute: ``unshare(CLONE_NEWNET)``
  and ``setns(CLONE_NEWNET)`` move only the calling thread, and
  ``/proc/thread-self/ns/net`` and ``/proc/thread-self/net/dev`` show that
  thread's namespace.  So namespace work runs in a short-lived thread of its
  own (``in_thread``), which ends right after: no pooled thread is ever left
  in a pod's namespace, and nothing forks the multi-threaded daemon (after a
  fork only async-signal-safe work is safe, and grpc's threads make that a
  real hazard).  Mounts are process-wide, so the bind mount the thread makes
  stays.
* Unmounting the bind mount drops the reference; ``MNT_DETACH`` so that a
  process still holding the mount busy (a plugin mid-call) cannot make
  removal fail.  A bind mount can be stacked twice on the same file by a
  buggy caller, so removal unmounts until the kernel says EINVAL.
* A new network namespace has only ``lo``, and it is down.  CNI configs
  as network add-ons install them (bridge or ptp + host-local + portmap)
  have no ``loopback`` plugin, so the runtime brings ``lo`` up itself, as
  containerd and CRI-O do: otherwise 127.0.0.1 inside the pod is
  unreachable (sidecars, localhost probes, port-forward).  It is done in the
  thread that made the namespace, right after ``unshare``, before anything
  else can see the namespace: an ``AF_INET`` socket opened there belongs to
  the thread's netns, and ``SIOCSIFFLAGS`` with ``IFF_UP`` on ``lo`` needs
  nothing else (the kernel gives ``lo`` 127.0.0.1/8 and ::1 when it comes
  up).
* Whether a path holds a netns is asked of the kernel: ``ioctl(NS_GET_NSTYPE)``
  on an fd of a namespace file answers ``CLONE_NEWNET``; on a plain file it
  fails with ENOTTY.  That tells "pinned netns" from "stale empty file left
  by a crash or a reboot" without parsing mountinfo.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable

from dockyard.cri import errors
from dockyard.cri.unmount import unmount_stacked
from dockyard.runtime.kernel import syscalls
from dockyard.runtime.kernel.errors import SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3)
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
LOOPBACK = b"lo"
# struct ifreq: the name (IFNAMSIZ = 16 bytes) then a 24-byte union whose
# first member, for the flags ioctls, is a short.
_IFREQ = struct.Struct("16sh22x")


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
        _pin_new_netns(path)
    except BaseException:
        _unlink(path)
        raise


def _pin_new_netns(path: str) -> None:
    def pin() -> None:
        syscalls.unshare(syscalls.CLONE_NEWNET)
        bring_up_loopback()
        syscalls.mount("/proc/thread-self/ns/net", path, None, syscalls.MS_BIND)

    in_thread(pin, "create netns at", path)


def bring_up_loopback() -> None:
    """Set ``lo`` up in the calling thread's network namespace (idempotent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, _IFREQ.pack(LOOPBACK, 0))
            _, flags = _IFREQ.unpack(answer)
            if not flags & IFF_UP:
                fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, _IFREQ.pack(LOOPBACK, flags | IFF_UP))
        except OSError as err:
            raise NetnsError("bring up loopback in", "/proc/thread-self/ns/net", err.errno or 0) from err


def in_thread(body: Callable[[], T], op: str, target: str) -> T:
    """Run ``body`` in a new thread that ends with it, and return its result.

    ``body`` may move its thread into another network namespace; the caller's
    threads are untouched.  SyscallError or OSError from ``body`` comes back
    as a NetnsError naming ``op``/``target`` and the errno."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(body())
        except BaseException as err:  # handed to the caller below
            failure.append(err)

    worker = threading.Thread(target=run, name=f"netns {op}", daemon=True)
    worker.start()
    worker.join()
    if failure:
        err = failure[0]
        if isinstance(err, SyscallError):
            raise NetnsError(f"{op} ({err.op})", target, err.errno) from err
        if isinstance(err, OSError):
            raise NetnsError(op, target, err.errno or 0) from err
        raise err
    return result[0]


def remove(path: str) -> None:
    """Unpin and delete ``path``; a missing path or a plain file is fine."""
    try:
        unmount_stacked(path)
    except SyscallError as err:
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
