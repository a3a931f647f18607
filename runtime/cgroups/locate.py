"""Pick and build the manager for this host, from where the container's
cgroup goes in each hierarchy (dockyard.runtime.kernel.cgroupfs.locate,
which says how that is found).

Everything the kernel would tell (mountinfo, /proc/self/cgroup) can be
passed in as text, and ``root`` moved, so tests build managers over a fake
tree without touching the host.
"""

from __future__ import annotations

import time

from ..kernel.cgroupfs import files as cgroupfs
from ..kernel.cgroupfs.locate import locate
from ..kernel.cgroupfs.mode import Mode
from ..kernel.lean import leanos

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Unpack

    from ..kernel.cgroupfs.locate import Probe
    from .manager import Manager
    from .systemd.manager import SystemdManager
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


def _systemd() -> type[SystemdManager]:
    from .systemd.manager import SystemdManager

    return SystemdManager


def new_manager(
    cgroups_path: str | None,
    container_id: str,
    *,
    wait: Callable[[float], None] | None = None,
    mkdir: Callable[[str], None] = cgroupfs.mkdir,
    rmdir: Callable[[str], None] = leanos.rmdir,
    allow_unenforced_devices: bool = False,
    systemd: bool = False,
    **probe: Unpack[Probe],
) -> Manager:
    """The manager for ``cgroups_path`` (config.json ``linux.cgroupsPath``).

    ``wait`` replaces ``time.sleep`` in the freeze and removal polls.
    ``allow_unenforced_devices`` lets a v2 host run with device rules it
    cannot enforce (see v2/devices.py); it is ignored on v1.  ``probe``
    (root, mode, mountinfo_text, proc_cgroup_text) goes to locate().
    ``systemd``: the systemd cgroup driver (systemd/manager.py), on v2 only.
    """
    where = locate(cgroups_path, container_id, systemd=systemd, **probe)
    wait = wait or time.sleep
    if systemd:
        from ..kernel.cgroupfs.systemd_path import parse

        place = parse(cgroups_path, container_id)
        return _systemd()(place.unit, place.slice, where.v2_path, root=where.root, container_id=container_id,
                          wait=wait, allow_unenforced_devices=allow_unenforced_devices)
    if where.mode is Mode.V2:
        return _v2()(where.v2_path, root=where.root, wait=wait, mkdir=mkdir, rmdir=rmdir,
                     allow_unenforced_devices=allow_unenforced_devices)
    return _v1()(where.v1_dirs or {}, unified=where.unified, wait=wait, mkdir=mkdir, rmdir=rmdir)
