"""cgroup management for dockyard-runc, cgroup v1 (and hybrid) and v2.

Public surface::

    mode = detect()                                   # Mode.V1 / HYBRID / V2
    mgr = new_manager(spec["linux"].get("cgroupsPath"), container_id)
    mgr.create(); mgr.apply(spec["linux"].get("resources") or {}); mgr.add(pid)
    mgr.freeze(); mgr.thaw(); mgr.pids(); mgr.stats(); mgr.destroy()
    v1_mounts(mountinfo_text)                         # for mounting cgroupfs in a container
    with_default_devices(resources, linux_devices)    # runc's device rules; call before apply()

Layout: ``v1/<controller>.py`` and ``v2/<controller>.py`` hold pure
``writes(resources) -> [(file, value), ...]`` functions that validate their
part of ``linux.resources`` and raise InvalidSpec naming the field; the
managers (``v1/manager.py``, ``v2/manager.py``) are the only code that
touches the filesystem.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from ..kernel.cgroupfs.cgroup_path import inner_path
    from ..kernel.cgroupfs.mode import DEFAULT_ROOT, Mode, detect, read_mountinfo
    from ..kernel.cgroupfs.mountinfo import CgroupMount, cgroup_mounts, own_cgroups, v1_mounts
    from .device_rules import RUNC_DEFAULT_RULES, with_default_devices
    from .locate import new_manager
    from .manager import Manager, Write
    from .restore import restore_manager
    from .v1.manager import V1Manager
    from .v2.manager import V2Manager

# Every name loads on first use: start and delete rebuild a manager from
# the state record (restore.py) and need none of the host probing; only
# create needs the device rules and the planned writes; a host needs one
# manager class (see locate._v1).  Manager is a type for annotations.
_LAZY = {
    "inner_path": "..kernel.cgroupfs.cgroup_path", "DEFAULT_ROOT": "..kernel.cgroupfs.mode",
    "Mode": "..kernel.cgroupfs.mode", "detect": "..kernel.cgroupfs.mode", "read_mountinfo": "..kernel.cgroupfs.mode",
    "CgroupMount": "..kernel.cgroupfs.mountinfo", "cgroup_mounts": "..kernel.cgroupfs.mountinfo",
    "own_cgroups": "..kernel.cgroupfs.mountinfo", "v1_mounts": "..kernel.cgroupfs.mountinfo",
    "new_manager": ".locate", "restore_manager": ".restore",
    "RUNC_DEFAULT_RULES": ".device_rules", "with_default_devices": ".device_rules",
    "Manager": ".manager", "Write": ".manager", "V1Manager": ".v1.manager", "V2Manager": ".v2.manager",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    relative = module.lstrip(".")
    value: object = getattr(__import__(relative, globals(), None, [name], len(module) - len(relative)), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_ROOT", "RUNC_DEFAULT_RULES", "CgroupMount", "Manager", "Mode", "V1Manager", "V2Manager", "Write",
    "cgroup_mounts", "detect", "inner_path", "new_manager", "own_cgroups", "v1_mounts",
    "read_mountinfo", "restore_manager", "with_default_devices",
]
