"""linux.resources.cpu (minus cpus/mems) -> cgroup v2 cpu controller files.

* ``cpu.weight`` (1..10000) comes from v1 shares (2..262144) by runc's
  linear map ``1 + ((shares - 2) * 9999) // 262142``, so that a spec written
  for v1 keeps its proportions.  Shares outside the kernel's v1 range are
  first clamped to it, as the v1 kernel itself would.
* ``cpu.max`` is ``"$QUOTA $PERIOD"`` in one write, so v1's ordering trouble
  is gone.  Only a quota writes ``"$QUOTA"`` (period kept); only a period
  writes ``"max $PERIOD"``, lifting any quota, as runc does.
* ``cpu.max.burst`` must fit in the quota, so it follows ``cpu.max``.
* ``cpu.idle`` = 1 makes the weight meaningless; it is written last.
* cgroup v2 has no real-time group scheduling: realtimeRuntime/Period are
  Unsupported, naming the field (runc refuses them too).
"""

from __future__ import annotations

from ...kernel.errors import InvalidSpec, Unsupported
from .. import spec_values as sv

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

FIELD = "linux.resources.cpu"
CONTROLLER = "cpu"

MIN_SHARES = 2
MAX_SHARES = 262144


def shares_to_weight(shares: int) -> int:
    shares = min(max(shares, MIN_SHARES), MAX_SHARES)
    return 1 + ((shares - 2) * 9999) // 262142


def writes(resources: dict[str, Any]) -> list[tuple[str, str]]:
    cpu = sv.section(resources, "cpu", FIELD)
    shares = sv.integer(cpu, "shares", f"{FIELD}.shares", minimum=0, maximum=sv.UINT64_MAX)
    quota = sv.integer(cpu, "quota", f"{FIELD}.quota", minimum=-1)
    period = sv.integer(cpu, "period", f"{FIELD}.period", minimum=0, maximum=sv.UINT64_MAX)
    burst = sv.integer(cpu, "burst", f"{FIELD}.burst", minimum=0, maximum=sv.UINT64_MAX)
    idle = sv.integer(cpu, "idle", f"{FIELD}.idle", minimum=0, maximum=1)
    for key in ("realtimeRuntime", "realtimePeriod"):
        value = sv.integer(cpu, key, f"{FIELD}.{key}", minimum=-1, maximum=sv.UINT64_MAX)
        if value:
            raise Unsupported("set cpu limit", f"{FIELD}.{key}", "cgroup v2 has no real-time group scheduling")
    if burst and not quota:
        raise InvalidSpec(f"{FIELD}.burst", "a burst needs a quota")

    out: list[tuple[str, str]] = []
    if shares:
        out.append(("cpu.weight", str(shares_to_weight(shares))))
    if quota or period:
        text = str(quota) if quota and quota > 0 else "max"
        if period:
            text += f" {period}"
        out.append(("cpu.max", text))
    out += sv.given((("cpu.max.burst", burst), ("cpu.idle", idle)))
    return out
