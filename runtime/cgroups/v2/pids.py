"""linux.resources.pids -> cgroup v2 pids.max (same file and rule as v1:
a limit <= 0 is ``max``)."""

from __future__ import annotations

from ..v1.pids import FIELD, pids_max

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

CONTROLLER = "pids"
__all__ = ["FIELD", "CONTROLLER", "writes"]


def writes(resources: dict[str, Any]) -> list[tuple[str, str]]:
    value = pids_max(resources)
    return [] if value is None else [("pids.max", value)]
