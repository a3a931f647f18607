"""A cgroup's usage, read from its files: the ``data`` object of ``runc
events --stats``, which the runtime prints and the daemon turns into CRI
stats.  stats_v1.py and stats_v2.py hold the pure parsers; this module
reads the files they ask for."""

from __future__ import annotations

from ..errors import RuntimeFault
from ..lean import leanos, leanpath
from . import files
from .mode import Mode

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

    from .locate import Placement


def hugepage_sizes(directory: str, suffix: str) -> list[str]:
    """Page sizes with a ``hugetlb.<size>.<suffix>`` file in ``directory``."""
    try:
        names = leanos.listdir(directory)
    except OSError:
        return []
    sizes = []
    for name in names:
        if name.startswith("hugetlb.") and name.endswith("." + suffix):
            size = name[len("hugetlb."):-len(suffix) - 1]
            if "." not in size:
                sizes.append(size)
    return sorted(sizes)


def read_v1(dirs: dict[str, str], unified: tuple[str, str] | None) -> dict[str, Any]:
    """Stats of a cgroup in v1 hierarchies (``dirs``: controller -> directory);
    hugetlb from the cgroup2 side of a hybrid host when no v1 hierarchy has it."""
    from . import stats_v1, stats_v2

    def read(controller: str, name: str) -> str | None:
        d = dirs.get(controller)
        return None if d is None else files.read_optional(leanpath.join(d, name))

    hugetlb_dir = dirs.get("hugetlb")
    data = stats_v1.collect(read, hugepage_sizes(hugetlb_dir, "limit_in_bytes") if hugetlb_dir else [])
    if hugetlb_dir is None and unified is not None:
        ud = unified[1]
        data["hugetlb"] = stats_v2.hugetlb(
            lambda name: files.read_optional(leanpath.join(ud, name)), hugepage_sizes(ud, "max"))
    return data


def read_v2(path: str) -> dict[str, Any]:
    """Stats of the cgroup2 directory ``path``."""
    from . import stats_v2

    return stats_v2.collect(lambda name: files.read_optional(leanpath.join(path, name)), hugepage_sizes(path, "max"))


def read(where: Placement) -> dict[str, Any]:
    if where.mode is Mode.V2:
        return read_v2(where.v2_path)
    return read_v1(where.v1_dirs or {}, where.unified)


def exists(where: Placement) -> bool:
    return any(leanpath.isdir(d) for d in where.directories())


def of_cgroup(cgroups_path: str, container_id: str) -> dict[str, Any] | None:
    """The stats of the cgroup ``cgroups_path`` names for ``container_id``,
    None when it does not exist (the container is gone) or cannot be read.
    A ``slice:prefix:name`` path is the systemd driver's, and a bare slice
    name (a pod's slice) stands for its nested path (systemd_path.py)."""
    from .locate import locate  # only here: the runtime's managers read stats from the dirs they have
    from .systemd_path import is_systemd_path, slice_dir

    try:
        systemd = is_systemd_path(cgroups_path)
        where = locate(cgroups_path if systemd else slice_dir(cgroups_path), container_id, systemd=systemd)
        if not exists(where):
            return None
        return read(where)
    except (RuntimeFault, OSError):
        return None
