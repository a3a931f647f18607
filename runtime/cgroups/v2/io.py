"""linux.resources.blockIO -> cgroup v2 io controller files.

* With the BFQ scheduler (``io.bfq.weight`` exists; the manager passes
  ``bfq=True``) weights keep their v1 range 10..1000 and go to
  ``io.bfq.weight`` as ``N`` or ``MAJ:MIN N``.  Without it ``io.weight``
  takes ``default N`` / ``MAJ:MIN N`` in 1..10000, converted by runc's map
  ``1 + (w - 10) * 9999 // 990``.
* v2 has no leaf weights; a leafWeight is reported by :func:`ignored`.
* Throttles go to ``io.max`` as ``MAJ:MIN rbps=N`` (wbps, riops, wiops), one
  key per write so each can fail on its own.  OCI took "rate 0 = no limit"
  from v1; v2 spells that ``max``.
"""

from __future__ import annotations

from ..block_io import FIELD, parse

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

CONTROLLER = "io"
__all__ = ["FIELD", "CONTROLLER", "blkio_weight_to_io_weight", "writes", "ignored"]
_IO_MAX_KEY = {"read_bps": "rbps", "write_bps": "wbps", "read_iops": "riops", "write_iops": "wiops"}


def blkio_weight_to_io_weight(weight: int) -> int:
    return 1 + (weight - 10) * 9999 // 990


def writes(resources: dict[str, Any], *, bfq: bool = False) -> list[tuple[str, str]]:
    bio = parse(resources)
    out: list[tuple[str, str]] = []
    if bio.weight is not None:
        if bfq:
            out.append(("io.bfq.weight", str(bio.weight)))
        else:
            out.append(("io.weight", f"default {blkio_weight_to_io_weight(bio.weight)}"))
    for dev in bio.weight_devices:
        if dev.weight is None:
            continue
        if bfq:
            out.append(("io.bfq.weight", f"{dev.major}:{dev.minor} {dev.weight}"))
        else:
            out.append(("io.weight", f"{dev.major}:{dev.minor} {blkio_weight_to_io_weight(dev.weight)}"))
    for t in bio.throttles:
        rate = "max" if t.rate == 0 else str(t.rate)
        out.append(("io.max", f"{t.major}:{t.minor} {_IO_MAX_KEY[t.kind]}={rate}"))
    return out


def ignored(resources: dict[str, Any]) -> list[tuple[str, str]]:
    bio = parse(resources)
    out: list[tuple[str, str]] = []
    if bio.leaf_weight is not None:
        out.append((f"{FIELD}.leafWeight", "cgroup v2 has no leaf weights"))
    for i, dev in enumerate(bio.weight_devices):
        if dev.leaf_weight is not None:
            out.append((f"{FIELD}.weightDevice[{i}].leafWeight", "cgroup v2 has no leaf weights"))
    return out
