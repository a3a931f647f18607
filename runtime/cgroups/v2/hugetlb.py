"""linux.resources.hugepageLimits -> cgroup v2 hugetlb.<size>.max.

Since Linux 5.7 a ``hugetlb.<size>.rsvd.max`` also limits reservations
(which is what actually fails early, at mmap time, rather than at fault
time with SIGBUS); runc writes it too when the file exists, and ``rsvd=True``
(set by the manager when it exists) does the same.
"""

from __future__ import annotations

from ..hugepages import FIELD, limits

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

CONTROLLER = "hugetlb"
__all__ = ["FIELD", "CONTROLLER", "writes"]


def writes(resources: dict[str, Any], *, rsvd: bool = False) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for size, limit in limits(resources):
        if rsvd:
            out.append((f"hugetlb.{size}.rsvd.max", str(limit)))
        out.append((f"hugetlb.{size}.max", str(limit)))
    return out
