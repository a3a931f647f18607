"""Resolve a path inside a rootfs as if the rootfs were "/".

The image author controls every symlink in the rootfs, and the runtime mounts
onto, and creates files at, paths that the image may have planted.  A plain
``os.path.join(root, dest)`` followed by ``mount`` lets ``/etc -> /`` in the
image send a bind mount onto the host's ``/etc``.  Facts this module relies on:

* A symlink's target is interpreted by the kernel relative to the *caller's*
  root, not the rootfs; so every link has to be expanded by us, with an
  absolute target restarting at ``root`` and ``..`` stopping at ``root``
  (the semantics of ``chroot`` or ``openat2(RESOLVE_IN_ROOT)``).
* Resolving a string and then using it is a time-of-check/time-of-use race:
  a container that shares the rootfs can swap a directory for a symlink in
  between (CVE-2021-30465, the runc "mount race").  :func:`open_in_root`
  therefore walks with file descriptors: each step is an ``openat`` with
  ``O_NOFOLLOW`` relative to the fd of the parent already proven to be inside
  root, and the caller mounts onto ``/proc/self/fd/N``, which names the
  inode we hold, not a path that can change under us.
* ``..`` is handled by popping our own stack of directory fds, never by
  ``openat(fd, "..")``: a directory moved out of root by a concurrent
  ``rename`` would otherwise let ``..`` climb out.
* Linux gives up after 40 nested links (ELOOP); we allow 255 expansions in
  total, which is what runc's securejoin allows, and report ELOOP past it.
"""

from __future__ import annotations

import errno
import stat

from .errors import SyscallError
from .lean import leanos

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Literal

MAX_SYMLINK_EXPANSIONS = 255

_O_PATH_NOFOLLOW = leanos.O_PATH | leanos.O_NOFOLLOW | leanos.O_CLOEXEC


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c and c != "."]


def resolve_in_root(root: str, unsafe_path: str) -> str:
    """Return the host path under ``root`` that ``unsafe_path`` names when
    ``root`` is "/".

    Components that do not exist are appended literally (the caller will
    create them); a later ``..`` then pops them lexically.  Only ``lstat`` and
    ``readlink`` touch the tree.  The answer is a string and so is racy if a
    hostile process can change the tree meanwhile; use :func:`open_in_root`
    for anything that mounts or creates.
    """
    root = leanos.path.abspath(root)
    todo = _components(unsafe_path)[::-1]  # a stack: the next component is last
    resolved: list[str] = []
    expansions = 0
    while todo:
        part = todo.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = leanos.path.join(root, *resolved, part)
        try:
            st = leanos.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)  # missing: the caller creates it
            continue
        except OSError as err:
            raise SyscallError("resolve", unsafe_path, err.errno or 0) from err
        if stat.S_ISLNK(st.st_mode):
            expansions += 1
            if expansions > MAX_SYMLINK_EXPANSIONS:
                raise SyscallError("resolve", unsafe_path, errno.ELOOP)
            try:
                target = leanos.readlink(candidate)
            except OSError as err:
                raise SyscallError("resolve", unsafe_path, err.errno or 0) from err
            if target.startswith("/"):
                resolved.clear()
            todo.extend(_components(target)[::-1])
            continue
        resolved.append(part)
    return leanos.path.join(root, *resolved) if resolved else root


def open_in_root(root: str, unsafe_path: str, *, create: Literal["dir", "file", None] = None,
                 mode: int = 0o755) -> int:
    """Open ``unsafe_path`` inside ``root`` and return an ``O_PATH|O_CLOEXEC``
    fd of the target; the caller mounts onto ``/proc/self/fd/{fd}`` and closes it.

    Missing components are created one at a time relative to their parent fd:
    directories with ``mode``, and with ``create="file"`` the last component
    as an empty regular file with ``mode & 0o666`` (a bind-mount target needs
    no execute bit).  After creating, the component is opened again with
    ``O_NOFOLLOW``, so if a racing process replaced it by a symlink, that
    link is expanded inside root like any other.  Without ``create`` a missing
    component raises :class:`SyscallError` with ENOENT naming ``unsafe_path``.
    """
    try:
        root_fd = leanos.open(root, leanos.O_PATH | leanos.O_DIRECTORY | leanos.O_CLOEXEC)
    except OSError as err:
        raise SyscallError("open root", root, err.errno or 0) from err
    stack = [root_fd]  # fds of the directories on the resolved path; [0] is root
    try:
        _walk(stack, unsafe_path, create, mode)
        target = stack.pop()  # may be root_fd itself when the path is "/"
    finally:
        for fd in stack:
            leanos.close(fd)
    return target


def _walk(stack: list[int], unsafe_path: str, create: Literal["dir", "file", None], mode: int) -> None:
    todo = _components(unsafe_path)[::-1]  # a stack: the next component is last
    expansions = 0
    while todo:
        part = todo.pop()
        if part == "..":
            if len(stack) > 1:
                leanos.close(stack.pop())
            continue
        parent = stack[-1]
        last = not todo
        try:
            fd = leanos.open(part, _O_PATH_NOFOLLOW, dir_fd=parent)
        except FileNotFoundError as err:
            if create is None:
                raise SyscallError("open in root", unsafe_path, errno.ENOENT) from err
            _create(parent, part, "file" if (last and create == "file") else "dir", mode, unsafe_path)
            todo.append(part)  # open what is there now, following nothing
            continue
        except OSError as err:
            raise SyscallError("open in root", unsafe_path, err.errno or 0) from err
        st = leanos.fstat(fd)
        if stat.S_ISLNK(st.st_mode):
            leanos.close(fd)
            expansions += 1
            if expansions > MAX_SYMLINK_EXPANSIONS:
                raise SyscallError("open in root", unsafe_path, errno.ELOOP)
            try:
                target = leanos.readlink(part, dir_fd=parent)
            except OSError as err:
                # Swapped for a non-link since our open: look again.
                if err.errno == errno.EINVAL:
                    todo.append(part)
                    continue
                raise SyscallError("open in root", unsafe_path, err.errno or 0) from err
            if target.startswith("/"):
                while len(stack) > 1:
                    leanos.close(stack.pop())
            todo.extend(_components(target)[::-1])
            continue
        stack.append(fd)
        if todo and not stat.S_ISDIR(st.st_mode):
            # More path after a non-directory (even ".."): ENOTDIR, as the
            # kernel says for "file/..".
            raise SyscallError("open in root", unsafe_path, errno.ENOTDIR)


def _create(parent: int, name: str, kind: Literal["dir", "file"], mode: int, unsafe_path: str) -> None:
    try:
        if kind == "dir":
            leanos.mkdir(name, mode, dir_fd=parent)
        else:
            flags = leanos.O_CREAT | leanos.O_EXCL | leanos.O_NOFOLLOW | leanos.O_WRONLY | leanos.O_CLOEXEC
            fd = leanos.open(name, flags, mode & 0o666, dir_fd=parent)
            leanos.close(fd)
    except FileExistsError:
        # Someone (maybe a dangling symlink) is there now; the caller re-opens
        # it with O_NOFOLLOW and resolves whatever it is inside root.
        pass
    except OSError as err:
        raise SyscallError(f"create {kind} in root", unsafe_path, err.errno or 0) from err
