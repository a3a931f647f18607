"""linux.resources.unified -> the named cgroup v2 files, written after every
other controller so that an explicit file value wins over a converted field
(runc applies unified last for the same reason)."""

from __future__ import annotations

from ..unified import FIELD, controller_of, entries

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FIELD", "controller_of", "writes"]


def writes(resources: dict[str, Any]) -> list[tuple[str, str]]:
    return entries(resources)
