"""A container's cgroup manager, built again from what its state record keeps.

``new_manager`` works the container's dirs out from the host: mountinfo, the
caller's own cgroups, the layout.  That is right once, at create.  Later
verbs (start, kill, delete, state, exec) must reach the same dirs, so create
stores ``manager.describe()`` in the state record and they rebuild the
manager from it here, without reading the host again.  Two reasons:

* Speed: start and delete run on every container's start path, and need
  neither the host probing nor its modules.
* Sameness: a relative cgroupsPath is placed under the *caller's* cgroup
  (see cgroup_path.place).  A delete run from another cgroup than the
  create (a restarted shim, a shell) would otherwise look elsewhere.

A description is JSON-shaped and checked here, since a state record can be
edited or torn; a bad one is InvalidSpec naming the record's field.
"""

from __future__ import annotations

import time

from ..kernel.errors import InvalidSpec

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

    from .manager import Manager

FIELD = "cgroups"


def _str_map(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.startswith("/")
                                              for k, v in value.items()):
        raise InvalidSpec(where, "must map controllers to absolute cgroup dirs")
    return value


def _abs(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidSpec(where, f"must be an absolute path, not {value!r}")
    return value


def _v1_fields(desc: dict[str, Any]) -> tuple[dict[str, str], tuple[str, str] | None]:
    dirs = _str_map(desc.get("dirs"), f"{FIELD}.dirs")
    unified = desc.get("unified")
    if unified is not None:
        if not isinstance(unified, list) or len(unified) != 2:
            raise InvalidSpec(f"{FIELD}.unified", "must be [cgroup2 mountpoint, dir] or null")
        unified = (_abs(unified[0], f"{FIELD}.unified[0]"), _abs(unified[1], f"{FIELD}.unified[1]"))
    return dirs, unified


def _v2_path(desc: dict[str, Any]) -> str:
    return _abs(desc.get("path"), f"{FIELD}.path")


def _name(desc: dict[str, Any], key: str) -> str:
    value = desc.get(key)
    if not isinstance(value, str) or not value or "/" in value:
        raise InvalidSpec(f"{FIELD}.{key}", f"must be a systemd unit name, not {value!r}")
    return value


def _bad_layout(desc: dict[str, Any]) -> InvalidSpec:
    return InvalidSpec(f"{FIELD}.layout", f"must be 'v1' or 'v2', not {desc.get('layout')!r}")


def restore_manager(desc: dict[str, Any], *, sleep: Any = time.sleep) -> Manager:
    """The manager ``desc`` (a ``describe()`` result) stands for."""
    layout = desc.get("layout")
    if layout == "v1":
        from .v1.manager import V1Manager

        dirs, unified = _v1_fields(desc)
        return V1Manager(dirs, unified=unified, wait=sleep)
    if layout == "v2":
        from .v2.manager import V2Manager

        return V2Manager(_v2_path(desc), root=_abs(desc.get("root"), f"{FIELD}.root"),
                         wait=sleep, allow_unenforced_devices=desc.get("allow_unenforced_devices") is True)
    if layout == "systemd":
        from .systemd.manager import SystemdManager

        return SystemdManager(_name(desc, "unit"), _name(desc, "slice"), _v2_path(desc),
                              root=_abs(desc.get("root"), f"{FIELD}.root"), container_id=_name(desc, "id"),
                              started=True, wait=sleep,
                              allow_unenforced_devices=desc.get("allow_unenforced_devices") is True)
    raise _bad_layout(desc)


def is_frozen(desc: dict[str, Any]) -> bool:
    """Whether the cgroup ``desc`` describes is frozen, read from the one file
    that tells, without building its manager: a container's status needs
    nothing else of its cgroup, and start, state and kill need nothing but
    the status, so they load none of the manager's modules.  A
    cgroup that is gone, or a v1 layout without the freezer, is not frozen."""
    from ..kernel.cgroupfs import files as cgroupfs

    layout = desc.get("layout")
    if layout == "v1":
        from .v1 import freezer as v1_freezer

        dirs, _ = _v1_fields(desc)
        where = dirs.get(v1_freezer.CONTROLLER)
        text = cgroupfs.read_optional(f"{where}/{v1_freezer.FILE}") if where else None
        return text is not None and v1_freezer.is_frozen(text)
    if layout in ("v2", "systemd"):
        from .v2 import freezer as v2_freezer

        text = cgroupfs.read_optional(f"{_v2_path(desc)}/{v2_freezer.EVENTS}")
        return text is not None and v2_freezer.is_frozen(text)
    raise _bad_layout(desc)
