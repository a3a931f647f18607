"""linux.resources.hugepageLimits -> cgroup v1 hugetlb.<size>.limit_in_bytes."""

from __future__ import annotations

from ..hugepages import FIELD, limits

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

CONTROLLER = "hugetlb"
__all__ = ["FIELD", "CONTROLLER", "writes"]


def writes(resources: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f"hugetlb.{size}.limit_in_bytes", str(limit)) for size, limit in limits(resources)]
