"""linux.resources.hugepageLimits -> cgroup v1 hugetlb.<size>.limit_in_bytes."""

from __future__ import annotations

from ..hugepages import FIELD, limits

TYPE_CHECKING = False  # see runtime/records.py: keeps typing out of the start path
if TYPE_CHECKING:
    from typing import Any

CONTROLLER = "hugetlb"
__all__ = ["FIELD", "CONTROLLER", "writes"]


def writes(resources: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f"hugetlb.{size}.limit_in_bytes", str(limit)) for size, limit in limits(resources)]
