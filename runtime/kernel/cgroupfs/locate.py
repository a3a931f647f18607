"""Where a container's cgroup is on this host: which layout the host has,
where each hierarchy is mounted, and where ``linux.cgroupsPath`` lands in
each (cgroup_path.py has the rules).

Everything the kernel would tell (mountinfo, /proc/self/cgroup) can be
passed in as text, and ``root`` moved, so tests place cgroups in a fake tree
without touching the host.  The runtime builds its managers from a
``Placement`` (dockyard.runtime.cgroups.locate); the daemon reads a
container's stats through one (stats.py).
"""

from __future__ import annotations

from ..errors import Unsupported
from ..lean import leanpath
from ..lean.records import Record
from . import files
from .cgroup_path import inner_path, place
from .mode import DEFAULT_ROOT, Mode, detect, read_mountinfo
from .mountinfo import cgroup_mounts, own_cgroups

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import TypedDict

    class Probe(TypedDict, total=False):
        """What locate() would otherwise ask the host (tests pass it in)."""

        root: str
        mode: Mode | None
        mountinfo_text: str | None
        proc_cgroup_text: str | None


class Placement(Record):
    """One cgroup's directories.  On V2, ``v2_path``; on V1 and HYBRID,
    ``v1_dirs`` (controller, such as ``"cpu"`` or ``"name=systemd"`` -> the
    directory in that hierarchy) and, on HYBRID, ``unified``: (cgroup2
    mountpoint, the directory in it) when that hierarchy is mounted."""

    mode: Mode
    root: str
    v2_path: str = ""
    v1_dirs: dict[str, str] | None = None
    unified: tuple[str, str] | None = None

    def directories(self) -> list[str]:
        """Each distinct directory, v1 hierarchies first, then the cgroup2 side."""
        if self.mode is Mode.V2:
            return [self.v2_path]
        seen: list[str] = []
        for d in (self.v1_dirs or {}).values():
            if d not in seen:
                seen.append(d)
        if self.unified is not None:
            seen.append(self.unified[1])
        return seen


def locate(
    cgroups_path: str | None,
    container_id: str,
    *,
    root: str = DEFAULT_ROOT,
    mode: Mode | None = None,
    mountinfo_text: str | None = None,
    proc_cgroup_text: str | None = None,
    systemd: bool = False,
) -> Placement:
    """The placement of ``cgroups_path`` (config.json ``linux.cgroupsPath``)
    for ``container_id``; nothing is created or checked on disk.  With
    ``systemd``, the path is the systemd driver's ``slice:prefix:name``
    (systemd_path.py), on cgroup v2 only."""
    root = leanpath.normpath(root)
    if systemd:
        from .systemd_path import parse

        place_ = parse(cgroups_path, container_id)
        if mode is None:
            mode = detect(root, mountinfo_text if mountinfo_text is not None else read_mountinfo())
        if mode is not Mode.V2:
            raise Unsupported("use the systemd cgroup driver", root,
                              f"it needs cgroup v2 only (this host's layout is {mode.value}); use cgroupfs")
        return Placement(mode, root, v2_path=root + place_.path)
    inner = inner_path(cgroups_path, container_id)
    if mountinfo_text is None:
        mountinfo_text = read_mountinfo()
    if mode is None:
        mode = detect(root, mountinfo_text)
    mounts = cgroup_mounts(mountinfo_text)
    own: dict[str, str] = {}
    if not inner.startswith("/"):
        own = own_cgroups(proc_cgroup_text if proc_cgroup_text is not None else files.read("/proc/self/cgroup"))

    if mode is Mode.V2:
        mount_root = next((m.root for m in mounts if m.fstype == "cgroup2"
                           and leanpath.normpath(m.mountpoint) == root), "/")
        path = leanpath.join(root, place(inner, leanpath.dirname(own.get("", "/")), mount_root))
        return Placement(mode, root, v2_path=path.rstrip("/"))

    dirs: dict[str, str] = {}
    for m in mounts:
        if m.fstype != "cgroup" or leanpath.dirname(leanpath.normpath(m.mountpoint)) != root:
            continue
        for controller in m.controllers:
            dirs[controller] = leanpath.join(m.mountpoint, place(inner, own.get(controller, "/"), m.root))
    if not dirs:
        raise Unsupported("find cgroup v1 hierarchies", root, "none is mounted there")
    unified: tuple[str, str] | None = None
    if mode is Mode.HYBRID:
        unified_mount = leanpath.join(root, "unified")
        m2 = next((m for m in mounts if m.fstype == "cgroup2"
                   and leanpath.normpath(m.mountpoint) == unified_mount), None)
        if m2 is not None:
            # The cgroup2 side follows the v2 rule for relative paths (the
            # parent of our own cgroup), since it is a v2 hierarchy.
            unified = (unified_mount, leanpath.join(
                unified_mount, place(inner, leanpath.dirname(own.get("", "/")), m2.root)))
    return Placement(mode, root, v1_dirs=dirs, unified=unified)
