"""linux.resources.hugepageLimits, validated once for v1 and v2.

``pageSize`` is the kernel's own spelling in the file names: ``2MB``,
``1GB``, ``64KB`` (the ``hugepages-2048kB`` sysfs name is *not* accepted,
matching runc, which builds the file name from the string as given).
"""

from __future__ import annotations

from ..kernel.errors import InvalidSpec
from . import spec_values as sv

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

FIELD = "linux.resources.hugepageLimits"


def _is_size(size: str) -> bool:
    """``<n>KB``, ``<n>MB`` or ``<n>GB``, n an ASCII number without a
    leading zero.  Plain string code: ``re`` stays off the hot paths.
    One final newline is allowed, as the ``$`` of the regex this replaced
    allowed it: the write to ``hugetlb.2MB\\n...`` then fails naming the file.
    Kept so that dropping ``re`` changed no accepted input."""
    size = size.removesuffix("\n")
    number, unit = size[:-2], size[-2:]
    return (unit in ("KB", "MB", "GB") and number.isascii() and number.isdigit()
            and not number.startswith("0"))


def limits(resources: dict[str, Any]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for i, raw in enumerate(sv.items(resources, "hugepageLimits", FIELD)):
        field = f"{FIELD}[{i}]"
        item = sv.entry(raw, field)
        size = sv.string(item, "pageSize", f"{field}.pageSize")
        if size is None or not _is_size(size):
            raise InvalidSpec(f"{field}.pageSize", f"{size!r} is not a size like '2MB' or '1GB'")
        limit = sv.required_integer(item, "limit", f"{field}.limit", minimum=0, maximum=sv.UINT64_MAX)
        out.append((size, limit))
    return out
