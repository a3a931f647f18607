"""``linux.cgroupsPath`` under the systemd cgroup driver -> a unit and its cgroup.

The rules, which are runc's and crun's (and what kubelet and containerd
write):

* The path is ``slice:prefix:name``.  The container's cgroup is the scope
  unit ``<prefix>-<name>.scope`` (``<name>.scope`` without a prefix) in the
  slice unit ``slice`` (``system.slice`` when empty).
* An empty cgroupsPath means ``system.slice:dockyard:<container id>``.
* systemd nests slices by name: ``a-b-c.slice`` is
  ``/a.slice/a-b.slice/a-b-c.slice`` under the cgroup2 root, and ``-.slice``
  is the root itself.  So the scope's cgroup is that path plus the scope's
  name; systemd makes it, the runtime only reads where it is.
* A name ending in ``.slice`` would make a slice unit, which cannot hold
  processes: refused for a container (runc would try and fail in systemd).
* Unit names take letters, digits and ``_.-\\`` (``:`` separates the parts,
  ``/`` would escape the hierarchy, ``@`` names a template instance), at most
  255 characters; a slice name has no empty ``-`` component.

Nothing here does I/O.
"""

from __future__ import annotations

from ..errors import InvalidSpec
from ..lean.records import Record

FIELD = "linux.cgroupsPath"
DEFAULT_SLICE = "system.slice"
DEFAULT_PREFIX = "dockyard"
UNIT_NAME_MAX = 255
_UNIT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-\\")


class SystemdPlace(Record):
    """Where a container goes under the systemd driver: its scope ``unit``
    in ``slice``, and the cgroup ``path`` (relative to the cgroup2 root,
    starting with ``/``) that systemd gives that unit."""

    slice: str
    unit: str
    path: str


def is_systemd_path(cgroups_path: str | None) -> bool:
    """Whether ``cgroups_path`` is in the driver's ``slice:prefix:name`` form."""
    return bool(cgroups_path) and ":" in (cgroups_path or "")


def check_unit_name(name: str, field: str = FIELD) -> str:
    if not name or len(name) > UNIT_NAME_MAX or not set(name) <= _UNIT_CHARS:
        raise InvalidSpec(field, f"{name!r} is not a valid systemd unit name "
                                 f"(letters, digits and _.-\\ only, at most {UNIT_NAME_MAX} characters)")
    return name


def expand_slice(slice_name: str, field: str = FIELD) -> str:
    """``a-b.slice`` -> ``/a.slice/a-b.slice``; ``-.slice`` -> ``/``."""
    check_unit_name(slice_name, field)
    stem = slice_name[:-len(".slice")] if slice_name.endswith(".slice") else ""
    if not stem:
        raise InvalidSpec(field, f"{slice_name!r} is not a slice name (like system.slice or kubepods-pod1.slice)")
    if stem == "-":
        return "/"
    parts = stem.split("-")
    if "" in parts:
        raise InvalidSpec(field, f"{slice_name!r}: a slice name has no empty '-' component")
    path, prefix = "", ""
    for part in parts:
        prefix = f"{prefix}-{part}" if prefix else part
        path += f"/{prefix}.slice"
    return path


def parse(cgroups_path: str | None, container_id: str) -> SystemdPlace:
    """The unit and cgroup of ``cgroups_path`` (empty: the default) for ``container_id``."""
    if not cgroups_path:
        slice_name, prefix, name = DEFAULT_SLICE, DEFAULT_PREFIX, container_id
    else:
        parts = cgroups_path.split(":")
        if len(parts) != 3:
            raise InvalidSpec(FIELD, f"{cgroups_path!r}: the systemd cgroup driver takes 'slice:prefix:name' "
                                     "(like system.slice:dockyard:ID)")
        slice_name, prefix, name = parts
        slice_name = slice_name or DEFAULT_SLICE
    if not name:
        raise InvalidSpec(FIELD, f"{cgroups_path!r} names no unit (the part after the last ':' is empty)")
    if name.endswith(".slice"):
        raise InvalidSpec(FIELD, f"{cgroups_path!r} names a slice unit, which cannot hold the container's "
                                 "processes; name a scope (slice:prefix:name without .slice)")
    unit = check_unit_name(f"{prefix}-{name}.scope" if prefix else f"{name}.scope")
    parent = expand_slice(slice_name)
    return SystemdPlace(slice_name, unit, f"{parent.rstrip('/')}/{unit}")


def pod_slice(parent_slice: str, pod_id: str, field: str = "cgroup_parent") -> str:
    """The slice of pod ``pod_id`` below ``parent_slice``, named so that
    systemd nests it there: ``kubepods.slice`` -> ``kubepods-pod<id>.slice``."""
    expand_slice(parent_slice, field)
    stem = parent_slice[:-len(".slice")]
    name = f"pod{pod_id}.slice" if stem == "-" else f"{stem}-pod{pod_id}.slice"
    return check_unit_name(name, field)


def slice_dir(cgroup_parent: str) -> str:
    """A pod's cgroup parent as a path under the cgroup2 root: a bare slice
    name (``kubepods-pod1.slice``, as a runtime or dockyardd names it) is
    expanded; a path (``/kubepods.slice/...``, as kubelet's systemd driver
    sends it, or a cgroupfs path) is already one."""
    if "/" not in cgroup_parent and cgroup_parent.endswith(".slice"):
        return expand_slice(cgroup_parent, "cgroup_parent")
    return cgroup_parent
