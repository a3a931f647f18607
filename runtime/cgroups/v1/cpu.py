"""linux.resources.cpu (minus cpus/mems) -> cgroup v1 cpu controller files.

Facts about the v1 CFS and RT files:

* The kernel checks ``cfs_quota_us / cfs_period_us`` against the parent's
  ratio on every write, using the current value of the other file, so
  changing both can fail half-way whatever the order (runc retries the period
  after the quota on EINVAL).  Here, when both are given, the quota is first
  lifted to -1 (unlimited, always accepted), then the period is written, then
  the real quota: no intermediate state is ever refused.
* ``cpu.cfs_burst_us`` must not exceed the quota, so it follows it.
* ``cpu.rt_runtime_us`` must fit in ``cpu.rt_period_us``; the period is
  written first, as runc does.
* ``cpu.idle`` = 1 makes the group SCHED_IDLE, after which the kernel refuses
  a shares write, so idle is written last.
* 0 in shares/quota/period/... means "not set", as in runc.
"""

from __future__ import annotations

from ...kernel.errors import InvalidSpec
from .. import spec_values as sv

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

FIELD = "linux.resources.cpu"
CONTROLLER = "cpu"


def _nonzero(cpu: dict[str, Any], key: str, *, minimum: int, maximum: int = sv.INT64_MAX) -> int | None:
    value = sv.integer(cpu, key, f"{FIELD}.{key}", minimum=minimum, maximum=maximum)
    return None if value == 0 else value


def writes(resources: dict[str, Any]) -> list[tuple[str, str]]:
    cpu = sv.section(resources, "cpu", FIELD)
    shares = _nonzero(cpu, "shares", minimum=0, maximum=sv.UINT64_MAX)
    quota = _nonzero(cpu, "quota", minimum=-1)
    period = _nonzero(cpu, "period", minimum=0, maximum=sv.UINT64_MAX)
    burst = sv.integer(cpu, "burst", f"{FIELD}.burst", minimum=0, maximum=sv.UINT64_MAX)
    rt_runtime = _nonzero(cpu, "realtimeRuntime", minimum=-1)
    rt_period = _nonzero(cpu, "realtimePeriod", minimum=0, maximum=sv.UINT64_MAX)
    idle = sv.integer(cpu, "idle", f"{FIELD}.idle", minimum=0, maximum=1)
    if burst is not None and burst > 0 and quota is None:
        raise InvalidSpec(f"{FIELD}.burst", "a burst needs a quota")

    out: list[tuple[str, str]] = []
    if shares is not None:
        out.append(("cpu.shares", str(shares)))
    out += sv.opened_then_set(("cpu.cfs_quota_us", quota), ("cpu.cfs_period_us", period))
    out += sv.given((("cpu.cfs_burst_us", burst), ("cpu.rt_period_us", rt_period),
                     ("cpu.rt_runtime_us", rt_runtime), ("cpu.idle", idle)))
    return out
