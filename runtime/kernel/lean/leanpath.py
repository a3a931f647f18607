"""``os.path`` for the runtime, without ``import os``: see leanos.py for why.

Only str paths, and only the functions the runtime calls.  Each behaves as
posixpath's does for str arguments (tests/unit/test_leanos.py checks them
against posixpath case by case), except ``realpath``, which asks the kernel
(see there).
"""

from __future__ import annotations

import posix

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable


def isabs(p: str) -> bool:
    return p.startswith("/")


def join(a: str, *rest: str) -> str:
    out = a
    for part in rest:
        if part.startswith("/"):
            out = part
        elif not out or out.endswith("/"):
            out += part
        else:
            out += "/" + part
    return out


def split(p: str) -> tuple[str, str]:
    cut = p.rfind("/") + 1
    head, tail = p[:cut], p[cut:]
    if head and head != "/" * len(head):
        head = head.rstrip("/")
    return head, tail


def dirname(p: str) -> str:
    return split(p)[0]


def basename(p: str) -> str:
    return p[p.rfind("/") + 1:]


def normpath(p: str) -> str:
    if not p:
        return "."
    # POSIX keeps exactly two leading slashes (implementation-defined); three
    # or more are one.
    lead = 2 if p.startswith("//") and not p.startswith("///") else 1 if p.startswith("/") else 0
    parts: list[str] = []
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part != ".." or (not lead and not parts) or (parts and parts[-1] == ".."):
            parts.append(part)
        elif parts:
            parts.pop()
    return "/" * lead + "/".join(parts) or "."


def abspath(p: str) -> str:
    return normpath(p if p.startswith("/") else join(posix.getcwd(), p))


def relpath(p: str, start: str = ".") -> str:
    if not p:
        raise ValueError("no path specified")
    target = [x for x in abspath(p).split("/") if x]
    base = [x for x in abspath(start).split("/") if x]
    common = 0
    for a, b in zip(target, base):
        if a != b:
            break
        common += 1
    parts = [".."] * (len(base) - common) + target[common:]
    return "/".join(parts) or "."


def _answers(stat: Callable[[str], object], p: str) -> bool:
    """Whether ``stat(p)`` succeeds (a bad path, like one with a NUL, does not)."""
    try:
        stat(p)
    except (OSError, ValueError):
        return False
    return True


def exists(p: str) -> bool:
    return _answers(posix.stat, p)


def lexists(p: str) -> bool:
    return _answers(posix.lstat, p)


_S_IFMT = 0o170000
_S_IFDIR = 0o040000


_S_IFREG = 0o100000


def isdir(p: str) -> bool:
    try:
        return posix.stat(p).st_mode & _S_IFMT == _S_IFDIR
    except (OSError, ValueError):
        return False


def isfile(p: str) -> bool:
    try:
        return posix.stat(p).st_mode & _S_IFMT == _S_IFREG
    except (OSError, ValueError):
        return False


def samefile(a: str, b: str) -> bool:
    """Whether two paths name the same file (OSError if either is missing, as posixpath's)."""
    sa, sb = posix.stat(a), posix.stat(b)
    return (sa.st_ino, sa.st_dev) == (sb.st_ino, sb.st_dev)


def realpath(p: str) -> str:
    """The path with every symlink resolved, by the kernel: open it O_PATH
    and read the name back from /proc/self/fd.  One open instead of an
    lstat and a readlink per component, and exactly the kernel's answer.
    A path that cannot be opened (it does not exist, or a component is
    not searchable) comes back only made absolute and normal, which is
    all the runtime's callers need: they then find that it is not there."""
    try:
        fd = posix.open(p, posix.O_PATH | posix.O_CLOEXEC)
    except (OSError, ValueError):
        return abspath(p)
    try:
        return posix.readlink(f"/proc/self/fd/{fd}")
    finally:
        posix.close(fd)
