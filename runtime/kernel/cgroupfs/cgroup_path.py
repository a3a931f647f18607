"""config.json ``linux.cgroupsPath`` -> a directory inside each hierarchy.

The rules, which are runc's (cgroupfs driver):

* An absolute path (``/dockyard/abc``) is taken from each hierarchy's root:
  ``/sys/fs/cgroup/memory/dockyard/abc``.
* A relative path (``dockyard/abc``) is taken from the cgroup the runtime
  itself runs in, read from ``/proc/self/cgroup``.  On v1 that is the
  runtime's own cgroup in each hierarchy.  On v2 it is the *parent* of the
  runtime's own cgroup: the runtime's cgroup has processes in it (the
  runtime), and v2's "no internal processes" rule would then forbid enabling
  controllers for a child of it, so runc goes one level up and so do we.
* No path at all means the relative path ``<container id>``.
* ``..`` can never climb out: a relative path is cleaned as if it were rooted
  at ``/`` (so ``../../x`` becomes ``x``), the way runc's CleanPath does.
* A path that cleans to nothing (``/``, ``.``, ``..``) is refused: it would
  make the hierarchy root or the runtime's own cgroup the container's.
* ``slice:prefix:name`` is the systemd driver's syntax (systemd_path.py):
  without that driver it is refused rather than taken literally.
"""

from __future__ import annotations

from ..errors import InvalidSpec, Unsupported
from ..lean import leanpath

FIELD = "linux.cgroupsPath"


def inner_path(cgroups_path: str | None, container_id: str) -> str:
    """The cleaned path: absolute (``/a/b``) or relative (``a/b``)."""
    path = cgroups_path or ""
    if ":" in path:
        raise Unsupported(
            "resolve cgroup path", FIELD,
            f"{path!r} is a systemd slice:prefix:name path; "
            "use the systemd cgroup driver (--systemd-cgroup) or a plain path",
        )
    if not path:
        path = container_id
    if path.startswith("/"):
        inner = leanpath.normpath(path).replace("//", "/")
    else:
        inner = leanpath.normpath("/" + path).lstrip("/")
    if inner in ("", "/"):
        # The hierarchy root, or the runtime's own cgroup: destroy() would
        # then remove every cgroup below it.
        raise InvalidSpec(FIELD, f"{cgroups_path!r} names no cgroup of its own")
    return inner


def place(inner: str, own_cgroup: str, mount_root: str = "/") -> str:
    """The cgroup's path relative to the mountpoint of its hierarchy.

    ``own_cgroup`` is the runtime's cgroup in that hierarchy (already moved one
    level up by the v2 caller); ``mount_root`` is mountinfo's ROOT field.
    """
    full = inner if inner.startswith("/") else leanpath.join(own_cgroup or "/", inner)
    full = leanpath.normpath(full)
    root = leanpath.normpath(mount_root or "/")
    if root != "/" and (full == root or full.startswith(root + "/")):
        full = full[len(root):] or "/"
    return full.lstrip("/")
