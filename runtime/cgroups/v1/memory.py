"""linux.resources.memory -> cgroup v1 memory controller files.

Facts about the v1 memory files:

* ``memory.limit_in_bytes`` must never exceed ``memory.memsw.limit_in_bytes``
  (memory+swap); the kernel refuses either write with EINVAL if it would
  break that, judging each write against the *current* value of the other.
  Raising both limits must therefore write memsw first, lowering both must
  write the limit first, and a pure function does not know the current
  values.  The order below works for every current state: memsw is first
  opened to unlimited (-1, always accepted), then the limit is written, then
  memsw is set to its final value, which validation has made >= the limit.
  The cost is a window of microseconds in which swap is uncapped during an
  update; runc instead reads the current limit first, which has its own race.
* OCI ``swap`` is memory+swap, exactly what memsw takes, so no conversion.
* ``memory.memsw.*`` exists only with swap accounting (``swapaccount=1``);
  ``swap_accounting=False`` says so and a finite swap is then Unsupported.
* A limit of -1 with no swap given also lifts memsw to -1, as runc does;
  otherwise a container whose limit is lifted stays capped by an old memsw.
* ``kernel`` (kmem.limit_in_bytes) is deprecated since Linux 5.4 and the
  file refuses writes on recent kernels; it is ignored, as runc >= 1.0.3
  does, and reported by :func:`ignored`.
* ``memory.oom_control`` takes ``1`` to disable the OOM killer; writing 0 is
  never needed because the field is only honoured when true.
* ``memory.use_hierarchy`` is always 1 since Linux 6.x and refuses 0, so
  only ``true`` is written.
* 0 in limit/reservation/swap/kernelTCP means "not set", as in runc, whose Go
  structs cannot tell 0 from absent.
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


def writes(resources: dict[str, Any], *, swap_accounting: bool = True) -> list[tuple[str, str]]:
    mem = sv.section(resources, "memory", FIELD)
    limit = _limit(mem, "limit")
    reservation = _limit(mem, "reservation")
    swap = _limit(mem, "swap")
    kernel_tcp = _limit(mem, "kernelTCP")
    _limit(mem, "kernel")  # validated, then ignored (see module docstring)
    swappiness = sv.integer(mem, "swappiness", f"{FIELD}.swappiness", minimum=0, maximum=100)
    no_oom_killer = sv.boolean(mem, "disableOOMKiller", f"{FIELD}.disableOOMKiller")
    use_hierarchy = sv.boolean(mem, "useHierarchy", f"{FIELD}.useHierarchy")
    sv.boolean(mem, "checkBeforeUpdate", f"{FIELD}.checkBeforeUpdate")

    if limit is not None and swap is not None and swap != -1:
        if limit == -1:
            raise InvalidSpec(f"{FIELD}.swap", "a finite swap needs a finite memory limit")
        if swap < limit:
            raise InvalidSpec(f"{FIELD}.swap", f"memory+swap {swap} is below the memory limit {limit}")
    if swap is None and limit == -1:
        swap = -1

    out: list[tuple[str, str]] = []
    if swap is not None and not swap_accounting:
        if swap != -1:
            raise Unsupported("set swap limit", f"{FIELD}.swap",
                              "the kernel has no swap accounting (memory.memsw.* is missing)")
        swap = None
    out += sv.opened_then_set(("memory.memsw.limit_in_bytes", swap), ("memory.limit_in_bytes", limit))
    out += sv.given((("memory.soft_limit_in_bytes", reservation), ("memory.kmem.tcp.limit_in_bytes", kernel_tcp),
                     ("memory.swappiness", swappiness)))
    if use_hierarchy:
        out.append(("memory.use_hierarchy", "1"))
    if no_oom_killer:
        out.append(("memory.oom_control", "1"))
    return out


def ignored(resources: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, reason) for each given value that is accepted but not applied."""
    mem = sv.section(resources, "memory", FIELD)
    if _limit(mem, "kernel") is not None:
        return [(f"{FIELD}.kernel", "kernel memory limits are deprecated since Linux 5.4 and ignored, as runc does")]
    return []
