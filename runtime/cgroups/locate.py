"""Pick and build the manager for this host: where each hierarchy is, which
layout it has, and where the container's cgroup goes in each.

Everything the kernel would tell (mountinfo, /proc/self/cgroup) can be
passed in as text, and ``root`` moved, so tests build managers over a fake
tree without touching the host.
"""

from __future__ import annotations

import time

from ..kernel.cgroupfs import files as cgroupfs
from ..kernel.cgroupfs.cgroup_path import inner_path, place
from ..kernel.cgroupfs.mode import DEFAULT_ROOT, Mode, detect, read_mountinfo
from ..kernel.cgroupfs.mountinfo import cgroup_mounts, own_cgroups
from ..kernel.errors import Unsupported
from ..kernel.lean import leanos, leanpath

TYPE_CHECKING = False  # see runtime/records.py
if TYPE_CHECKING:
    from collections.abc import Callable

    from .manager import Manager
    from .v1.manager import V1Manager
    from .v2.manager import V2Manager


# A host has one layout: import only that layout's manager (which imports
# its controllers only when resources are applied; see v1/manager.py).
def _v1() -> type[V1Manager]:
    from .v1.manager import V1Manager

    return V1Manager


def _v2() -> type[V2Manager]:
    from .v2.manager import V2Manager

    return V2Manager


def new_manager(
    cgroups_path: str | None,
    container_id: str,
    *,
    root: str = DEFAULT_ROOT,
    mode: Mode | None = None,
    mountinfo_text: str | None = None,
    proc_cgroup_text: str | None = None,
    wait: Callable[[float], None] | None = None,
    mkdir: Callable[[str], None] = cgroupfs.mkdir,
    rmdir: Callable[[str], None] = leanos.rmdir,
    allow_unenforced_devices: bool = False,
) -> Manager:
    """The manager for ``cgroups_path`` (config.json ``linux.cgroupsPath``).

    ``wait`` replaces ``time.sleep`` in the freeze and removal polls.
    ``allow_unenforced_devices`` lets a v2 host run with device rules it
    cannot enforce (see v2/devices.py); it is ignored on v1.
    """
    inner = inner_path(cgroups_path, container_id)
    root = leanpath.normpath(root)
    if mountinfo_text is None:
        mountinfo_text = read_mountinfo()
    if mode is None:
        mode = detect(root, mountinfo_text)
    mounts = cgroup_mounts(mountinfo_text)
    own: dict[str, str] = {}
    if not inner.startswith("/"):
        own = own_cgroups(proc_cgroup_text if proc_cgroup_text is not None else cgroupfs.read("/proc/self/cgroup"))
    wait = wait or time.sleep

    if mode is Mode.V2:
        mount_root = next((m.root for m in mounts if m.fstype == "cgroup2"
                           and leanpath.normpath(m.mountpoint) == root), "/")
        path = leanpath.join(root, place(inner, leanpath.dirname(own.get("", "/")), mount_root))
        return _v2()(path.rstrip("/"), root=root, wait=wait, mkdir=mkdir, rmdir=rmdir,
                         allow_unenforced_devices=allow_unenforced_devices)

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
    return _v1()(dirs, unified=unified, wait=wait, mkdir=mkdir, rmdir=rmdir)
