"""linux.resources.blockIO -> cgroup v1 blkio files.

Facts: the CFQ scheduler that gave ``blkio.weight`` and ``blkio.leaf_weight``
was removed in Linux 5.0.  With BFQ the weights are ``blkio.bfq.weight`` and
``blkio.bfq.weight_device`` (same 10..1000 range); leaf weights exist no
more.  ``bfq=True`` (the manager sets it when ``blkio.bfq.weight`` exists and
``blkio.weight`` does not) picks the BFQ names, as runc does.  A throttle rate
of 0 removes that device's limit.
"""

from __future__ import annotations

from ..block_io import FIELD, parse

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

CONTROLLER = "blkio"
__all__ = ["FIELD", "CONTROLLER", "writes"]


def writes(resources: dict[str, Any], *, bfq: bool = False) -> list[tuple[str, str]]:
    bio = parse(resources)
    prefix = "blkio.bfq." if bfq else "blkio."
    out: list[tuple[str, str]] = []
    if bio.weight is not None:
        out.append((prefix + "weight", str(bio.weight)))
    if bio.leaf_weight is not None:
        out.append(("blkio.leaf_weight", str(bio.leaf_weight)))
    for dev in bio.weight_devices:
        if dev.weight is not None:
            out.append((prefix + "weight_device", f"{dev.major}:{dev.minor} {dev.weight}"))
        if dev.leaf_weight is not None:
            out.append(("blkio.leaf_weight_device", f"{dev.major}:{dev.minor} {dev.leaf_weight}"))
    for t in bio.throttles:
        out.append((f"blkio.throttle.{t.kind}_device", f"{t.major}:{t.minor} {t.rate}"))
    return out
