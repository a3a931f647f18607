"""linux.resources.pids -> cgroup v1 pids.max.

A limit <= 0 means no limit (runc's specconv maps it to -1, written as
``max``), so ``"limit": 0`` is unlimited, not "no processes at all".
"""

from __future__ import annotations

from .. import spec_values as sv

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

FIELD = "linux.resources.pids"
CONTROLLER = "pids"


def pids_max(resources: dict[str, Any]) -> str | None:
    pids = sv.section(resources, "pids", FIELD)
    limit = sv.integer(pids, "limit", f"{FIELD}.limit")
    if limit is None:
        return None
    return "max" if limit <= 0 else str(limit)


def writes(resources: dict[str, Any]) -> list[tuple[str, str]]:
    value = pids_max(resources)
    return [] if value is None else [("pids.max", value)]
