"""linux.resources.memory -> cgroup v2 memory controller files.

Facts about the v2 memory files and the conversions (runc's):

* ``memory.max`` is the limit, ``memory.low`` the reservation (best-effort
  protection is the closest v2 has to v1's soft limit); -1 is ``max``.
* ``memory.swap.max`` limits swap *alone*, while OCI ``swap`` (from v1) is
  memory+swap, so the value written is swap - limit.  That needs a finite
  limit; swap == limit writes 0 (no swap at all).
* A limit of -1 with no swap given also lifts swap to ``max``, matching v1.
* The two files are independent (no cross-check like v1's memsw), so order
  does not matter; swap is written first as runc does.
* There is no v2 file for kernel, kernelTCP, swappiness or disabling the OOM
  killer; those values are accepted and reported by :func:`ignored`.
* ``memory.swap.max`` is missing without CONFIG_SWAP / swap accounting:
  ``swap_accounting=False`` then makes a finite swap Unsupported.
"""

from __future__ import annotations

from ...kernel.errors import InvalidSpec, Unsupported
from .. import spec_values as sv

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

FIELD = "linux.resources.memory"
CONTROLLER = "memory"


def _limit(mem: dict[str, Any], key: str) -> int | None:
    return sv.byte_limit(mem, key, f"{FIELD}.{key}")


def _text(value: int) -> str:
    return "max" if value == -1 else str(value)


def writes(resources: dict[str, Any], *, swap_accounting: bool = True) -> list[tuple[str, str]]:
    mem = sv.section(resources, "memory", FIELD)
    limit = _limit(mem, "limit")
    reservation = _limit(mem, "reservation")
    swap = _limit(mem, "swap")
    _limit(mem, "kernel")
    _limit(mem, "kernelTCP")
    sv.integer(mem, "swappiness", f"{FIELD}.swappiness", minimum=0, maximum=100)
    sv.boolean(mem, "disableOOMKiller", f"{FIELD}.disableOOMKiller")
    sv.boolean(mem, "useHierarchy", f"{FIELD}.useHierarchy")
    sv.boolean(mem, "checkBeforeUpdate", f"{FIELD}.checkBeforeUpdate")

    swap_max: str | None = None
    if swap == -1 or (swap is None and limit == -1):
        swap_max = "max"
    elif swap is not None:
        if limit is None or limit == -1:
            raise InvalidSpec(f"{FIELD}.swap", "a finite swap needs a finite memory limit")
        if swap < limit:
            raise InvalidSpec(f"{FIELD}.swap", f"memory+swap {swap} is below the memory limit {limit}")
        swap_max = str(swap - limit)
    if swap_max is not None and not swap_accounting:
        if swap_max != "max":
            raise Unsupported("set swap limit", f"{FIELD}.swap", "the kernel has no memory.swap.max")
        swap_max = None

    out: list[tuple[str, str]] = []
    if swap_max is not None:
        out.append(("memory.swap.max", swap_max))
    if limit is not None:
        out.append(("memory.max", _text(limit)))
    if reservation is not None:
        out.append(("memory.low", _text(reservation)))
    return out


def ignored(resources: dict[str, Any]) -> list[tuple[str, str]]:
    mem = sv.section(resources, "memory", FIELD)
    out: list[tuple[str, str]] = []
    if _limit(mem, "kernel") is not None:
        out.append((f"{FIELD}.kernel", "kernel memory limits are deprecated and ignored, as runc does"))
    if _limit(mem, "kernelTCP") is not None:
        out.append((f"{FIELD}.kernelTCP", "cgroup v2 has no separate TCP memory limit"))
    if mem.get("swappiness") is not None:
        out.append((f"{FIELD}.swappiness", "cgroup v2 has no per-cgroup swappiness"))
    if mem.get("disableOOMKiller"):
        out.append((f"{FIELD}.disableOOMKiller", "cgroup v2 cannot disable the OOM killer"))
    return out
