"""CRI LinuxContainerResources -> OCI ``linux.resources``, and the
oom_score_adj rule.

A zero in the CRI message means "not set" (proto3 has no presence for
scalars), so zero values are left out and the runtime keeps the kernel's
defaults.  ``memory_swap_limit_in_bytes`` is memory+swap as in cgroup v1's
memsw (-1: unlimited).

``restrict_oom_score_adj`` (containerd's option, on in the test config):
root without CAP_SYS_RESOURCE cannot lower a process's oom_score_adj below
its parent's, so a request below the daemon's own value is raised to it
instead of failing the container.
"""

from __future__ import annotations

from typing import Any

from cri_api.v1 import api_pb2

from ..errors import InvalidArgument


def linux_resources(res: api_pb2.LinuxContainerResources, field: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cpu: dict[str, Any] = {}
    if res.cpu_shares < 0:
        raise InvalidArgument(f"{field}.cpu_shares: {res.cpu_shares} is negative")
    if res.cpu_shares:
        cpu["shares"] = res.cpu_shares
    if res.cpu_quota:
        cpu["quota"] = res.cpu_quota
    if res.cpu_period < 0:
        raise InvalidArgument(f"{field}.cpu_period: {res.cpu_period} is negative")
    if res.cpu_period:
        cpu["period"] = res.cpu_period
    if res.cpuset_cpus:
        cpu["cpus"] = res.cpuset_cpus
    if res.cpuset_mems:
        cpu["mems"] = res.cpuset_mems
    if cpu:
        out["cpu"] = cpu
    memory: dict[str, Any] = {}
    if res.memory_limit_in_bytes < 0:
        raise InvalidArgument(f"{field}.memory_limit_in_bytes: {res.memory_limit_in_bytes} is negative")
    if res.memory_limit_in_bytes:
        memory["limit"] = res.memory_limit_in_bytes
    if res.memory_swap_limit_in_bytes:
        swap = res.memory_swap_limit_in_bytes
        if swap < -1:
            raise InvalidArgument(f"{field}.memory_swap_limit_in_bytes: {swap} (use -1 for unlimited)")
        if swap > 0 and res.memory_limit_in_bytes and swap < res.memory_limit_in_bytes:
            raise InvalidArgument(f"{field}.memory_swap_limit_in_bytes: {swap} is below the memory limit "
                                  f"{res.memory_limit_in_bytes} (it counts memory plus swap)")
        memory["swap"] = swap
    if memory:
        out["memory"] = memory
    hugepages = []
    for i, h in enumerate(res.hugepage_limits):
        if not h.page_size:
            raise InvalidArgument(f"{field}.hugepage_limits[{i}].page_size: must not be empty")
        hugepages.append({"pageSize": h.page_size, "limit": h.limit})
    if hugepages:
        out["hugepageLimits"] = hugepages
    if res.unified:
        out["unified"] = dict(sorted(res.unified.items()))
    return out


def clamp_oom_score_adj(value: int, floor: int | None, field: str) -> int:
    if not -1000 <= value <= 1000:
        raise InvalidArgument(f"{field}: {value} is outside -1000..1000")
    if floor is not None and value < floor:
        return floor
    return value
