"""Which cgroup layout the host uses: v1, hybrid or v2.

* V2: ``root`` itself is a cgroup2 mount (``cgroup.controllers`` lives there).
* HYBRID: v1 hierarchies under ``root`` plus a cgroup2 mount at
  ``root/unified``, as systemd's "hybrid" setup makes.  This project's test
  machine is one, and its cgroup2 mount holds only the hugetlb controller.
  Resources are managed as on V1; the cgroup2 side only tracks processes
  (and takes hugetlb limits when hugetlb is bound there; see v1/manager.py).
* V1: v1 hierarchies under ``root`` and no cgroup2 mount at ``root/unified``.
"""

from __future__ import annotations

from ..errors import SyscallError, Unsupported
from ..lean import leanos
from .mountinfo import cgroup_mounts

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import ClassVar

DEFAULT_ROOT = "/sys/fs/cgroup"


class Mode:
    """One of three singletons, ``Mode.V1``, ``Mode.HYBRID``, ``Mode.V2``,
    with the enum-like ``name`` and ``value`` ("v1", "hybrid", "v2").

    Not an enum.Enum: ``enum`` stays off the hot paths (../lean/README.md).
    Compare with ``is`` or ``==``."""

    __slots__ = ("name", "value")
    V1: ClassVar[Mode]
    HYBRID: ClassVar[Mode]
    V2: ClassVar[Mode]

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    def __repr__(self) -> str:
        return f"<Mode.{self.name}: {self.value!r}>"


Mode.V1 = Mode("V1", "v1")
Mode.HYBRID = Mode("HYBRID", "hybrid")
Mode.V2 = Mode("V2", "v2")


def read_mountinfo() -> str:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            return f.read()
    except OSError as err:
        raise SyscallError("read", "/proc/self/mountinfo", err.errno or 0) from err


def detect(root: str = DEFAULT_ROOT, mountinfo_text: str | None = None) -> Mode:
    """The layout of the cgroup mounts at and under ``root``."""
    if mountinfo_text is None:
        mountinfo_text = read_mountinfo()
    root = leanos.path.normpath(root)
    mounts = cgroup_mounts(mountinfo_text)
    if any(m.fstype == "cgroup2" and leanos.path.normpath(m.mountpoint) == root for m in mounts):
        return Mode.V2
    has_v1 = any(
        m.fstype == "cgroup" and leanos.path.dirname(leanos.path.normpath(m.mountpoint)) == root
        for m in mounts
    )
    if not has_v1:
        raise Unsupported("detect cgroup mode", root, "no cgroup or cgroup2 filesystem is mounted there")
    unified = leanos.path.join(root, "unified")
    if any(m.fstype == "cgroup2" and leanos.path.normpath(m.mountpoint) == unified for m in mounts):
        return Mode.HYBRID
    return Mode.V1
