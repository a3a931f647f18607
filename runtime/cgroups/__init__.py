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

from .cgroup_path import inner_path
from .mode import DEFAULT_ROOT, Mode, detect
from .mountinfo import CgroupMount, cgroup_mounts, own_cgroups, v1_mounts
from .new_manager import new_manager

TYPE_CHECKING = False  # see runtime/records.py
if TYPE_CHECKING:
    from .device_rules import RUNC_DEFAULT_RULES, with_default_devices
    from .manager import Manager, Write
    from .v1.manager import V1Manager
    from .v2.manager import V2Manager


def __getattr__(name: str) -> object:
    # These load on first use: only create needs the device rules and the
    # planned writes, and a host needs one manager class (see new_manager._v1).
    # Manager is a type for annotations; the runtime never touches it.
    value: object
    if name in ("RUNC_DEFAULT_RULES", "with_default_devices"):
        from . import device_rules

        value = getattr(device_rules, name)
    elif name in ("Manager", "Write"):
        from . import manager

        value = getattr(manager, name)
    elif name == "V1Manager":
        from .v1.manager import V1Manager

        value = V1Manager
    elif name == "V2Manager":
        from .v2.manager import V2Manager

        value = V2Manager
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_ROOT", "RUNC_DEFAULT_RULES", "CgroupMount", "Manager", "Mode", "V1Manager", "V2Manager", "Write",
    "cgroup_mounts", "detect", "inner_path", "new_manager", "own_cgroups", "v1_mounts",
    "with_default_devices",
]
