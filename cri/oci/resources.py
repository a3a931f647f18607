"""CRI LinuxContainerResources -> OCI ``linux.resources``, and the
oom_score_adj rule.

A zero in the CRI message means "not set" (proto3 has no presence for
scalars), so zero values are left out and the runtime keeps the kernel's
defaults.  ``memory_swap_limit_in_bytes`` is memory+swap as in cgroup v1's
memsw (-1: unlimited).

Every value is checked against what the kernel takes, so a bad one is
InvalidArgument naming its CRI field here, not a cgroup write the runtime
fails half-way (which surfaced as INTERNAL).  Facts about the cgroup files:

* CFS bandwidth: the period is 1 ms to 1 s (``cpu.cfs_period_us``, v2's
  ``cpu.max``); a quota below 1 ms is refused, any negative quota means no
  limit, and a quota above 2^44 - 1 us overflows the kernel's bandwidth.
* A memory limit of a few pages kills the container's init at once (see
  MIN_MEMORY_LIMIT).
* ``cpu.shares`` is 2..262144 (MAX_SHARES); v2's weight is derived from it,
  and a larger value has no weight.
* A cpuset list is ``N`` or ``N-M`` items joined by commas, each CPU or
  memory node existing and online (else EINVAL).
* Huge page sizes are the ones the node has (/sys/kernel/mm/hugepages).
* ``unified`` keys are cgroup v2 files, ``<controller>.<name>``; they have
  no meaning on a v1 node.

``restrict_oom_score_adj`` (containerd's option, on in the test config):
root without CAP_SYS_RESOURCE cannot lower a process's oom_score_adj below
its parent's, so a request below the daemon's own value is raised to it
instead of failing the container.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cri_api.v1 import api_pb2

from ..errors import InvalidArgument, shorten

MIN_CFS_PERIOD_US = 1000
MAX_CFS_PERIOD_US = 1_000_000
MIN_CFS_QUOTA_US = 1000
MAX_CFS_QUOTA_US = (1 << 44) - 1
MAX_SHARES = 1 << 18
MAX_CPUSET_ID = 1 << 16
# Below this the runtime's own init is killed by the cgroup's OOM killer
# before the container's program runs, and the start fails with no word of
# why; CRI-O refuses limits below the same 12 MiB.
MIN_MEMORY_LIMIT = 12 << 20
_LIST_ITEM = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_PAGE_SIZE = re.compile(r"[1-9][0-9]*(KB|MB|GB)")
_UNIFIED_KEY = re.compile(r"[a-z][a-z0-9_]*\.[a-z0-9_.]+")


@dataclass(frozen=True, slots=True)
class NodeResources:
    """What this node's kernel offers (cri/node_facts.py reads it once)."""

    cgroup_v2: bool
    cpus: frozenset[int]
    mems: frozenset[int]
    hugepage_sizes: frozenset[str]  # as CRI names them: "2MB", "1GB"


def parse_id_list(text: str, field: str) -> frozenset[int]:
    """A cpuset list ("0-3,5") as the ids it names; InvalidArgument naming ``field``."""
    ids: set[int] = set()
    for item in text.split(","):
        m = _LIST_ITEM.fullmatch(item)
        if m is None:
            raise InvalidArgument(f"{field}: {shorten(text)!r} is not a list like '0-3,5'")
        low, high = int(m.group(1)), int(m.group(2) or m.group(1))
        if low > high or high >= MAX_CPUSET_ID:
            raise InvalidArgument(f"{field}: {item!r} is not a range of ids below {MAX_CPUSET_ID}")
        ids.update(range(low, high + 1))
    return frozenset(ids)


def _check_ids(text: str, field: str, online: frozenset[int] | None, what: str) -> None:
    ids = parse_id_list(text, field)
    missing = sorted(ids - online) if online is not None else []
    if missing:
        raise InvalidArgument(f"{field}: {what} {', '.join(map(str, missing[:8]))} not online on this node")


def linux_resources(res: api_pb2.LinuxContainerResources, field: str,
                    node: NodeResources | None = None) -> dict[str, Any]:
    """The OCI resources; ``node``'s facts, when given, are checked too."""
    out: dict[str, Any] = {}
    cpu: dict[str, Any] = {}
    if not 0 <= res.cpu_shares <= MAX_SHARES:
        raise InvalidArgument(f"{field}.cpu_shares: {res.cpu_shares} is outside 0..{MAX_SHARES}")
    if res.cpu_shares:
        cpu["shares"] = max(2, res.cpu_shares)
    if 0 < res.cpu_quota < MIN_CFS_QUOTA_US or res.cpu_quota > MAX_CFS_QUOTA_US:
        raise InvalidArgument(f"{field}.cpu_quota: {res.cpu_quota} us is outside {MIN_CFS_QUOTA_US}.."
                              f"{MAX_CFS_QUOTA_US} (or negative: no limit)")
    if res.cpu_quota:
        cpu["quota"] = res.cpu_quota if res.cpu_quota > 0 else -1
    if res.cpu_period and not MIN_CFS_PERIOD_US <= res.cpu_period <= MAX_CFS_PERIOD_US:
        raise InvalidArgument(f"{field}.cpu_period: {res.cpu_period} us is outside "
                              f"{MIN_CFS_PERIOD_US}..{MAX_CFS_PERIOD_US}")
    if res.cpu_period:
        cpu["period"] = res.cpu_period
    if res.cpuset_cpus:
        _check_ids(res.cpuset_cpus, f"{field}.cpuset_cpus", node.cpus if node else None, "CPUs")
        cpu["cpus"] = res.cpuset_cpus
    if res.cpuset_mems:
        _check_ids(res.cpuset_mems, f"{field}.cpuset_mems", node.mems if node else None, "memory nodes")
        cpu["mems"] = res.cpuset_mems
    if cpu:
        out["cpu"] = cpu
    memory: dict[str, Any] = {}
    if res.memory_limit_in_bytes < 0 or 0 < res.memory_limit_in_bytes < MIN_MEMORY_LIMIT:
        raise InvalidArgument(f"{field}.memory_limit_in_bytes: {res.memory_limit_in_bytes} is below "
                              f"{MIN_MEMORY_LIMIT} bytes, the least a container can start in")
    if res.memory_limit_in_bytes:
        memory["limit"] = res.memory_limit_in_bytes
    if res.memory_swap_limit_in_bytes:
        swap = res.memory_swap_limit_in_bytes
        if swap < -1:
            raise InvalidArgument(f"{field}.memory_swap_limit_in_bytes: {swap} (use -1 for unlimited)")
        if swap > 0 and not res.memory_limit_in_bytes:
            raise InvalidArgument(f"{field}.memory_swap_limit_in_bytes: {swap} with no memory limit "
                                  "(it counts memory plus swap, and memory is unlimited)")
        if swap > 0 and swap < res.memory_limit_in_bytes:
            raise InvalidArgument(f"{field}.memory_swap_limit_in_bytes: {swap} is below the memory limit "
                                  f"{res.memory_limit_in_bytes} (it counts memory plus swap)")
        memory["swap"] = swap
    if memory:
        out["memory"] = memory
    hugepages = []
    for i, h in enumerate(res.hugepage_limits):
        where = f"{field}.hugepage_limits[{i}].page_size"
        if not _PAGE_SIZE.fullmatch(h.page_size):
            raise InvalidArgument(f"{where}: {shorten(h.page_size)!r} is not a size like '2MB' or '1GB'")
        if node is not None and h.page_size not in node.hugepage_sizes:
            raise InvalidArgument(f"{where}: this node has no {h.page_size} huge pages "
                                  f"(it has: {', '.join(sorted(node.hugepage_sizes)) or 'none'})")
        hugepages.append({"pageSize": h.page_size, "limit": h.limit})
    if hugepages:
        out["hugepageLimits"] = hugepages
    if res.unified:
        if node is not None and not node.cgroup_v2:
            raise InvalidArgument(f"{field}.unified: cgroup v2 settings, but this node's cgroups are v1")
        for key, value in res.unified.items():
            if not _UNIFIED_KEY.fullmatch(key):
                raise InvalidArgument(f"{field}.unified: {shorten(key)!r} is not a cgroup v2 file like 'memory.high'")
            if "\0" in value or "\n" in value or len(value) > 4096:
                raise InvalidArgument(f"{field}.unified[{key}]: not one line of at most 4096 characters")
        out["unified"] = dict(sorted(res.unified.items()))
    return out


def cri_resources(resources: dict[str, Any], oom_score_adj: int = 0) -> api_pb2.LinuxContainerResources:
    """OCI ``linux.resources`` (and the process's oomScoreAdj) back to CRI:
    what ContainerStatus.resources reports, the inverse of
    :func:`linux_resources` for every value it writes (pure; anything else
    the spec holds, such as device rules, has no CRI field)."""
    out = api_pb2.LinuxContainerResources(oom_score_adj=oom_score_adj)
    cpu = resources.get("cpu") or {}
    out.cpu_shares = int(cpu.get("shares") or 0)
    out.cpu_quota = int(cpu.get("quota") or 0)
    out.cpu_period = int(cpu.get("period") or 0)
    out.cpuset_cpus = str(cpu.get("cpus") or "")
    out.cpuset_mems = str(cpu.get("mems") or "")
    memory = resources.get("memory") or {}
    out.memory_limit_in_bytes = int(memory.get("limit") or 0)
    out.memory_swap_limit_in_bytes = int(memory.get("swap") or 0)
    for h in resources.get("hugepageLimits") or []:
        out.hugepage_limits.append(api_pb2.HugepageLimit(page_size=str(h["pageSize"]), limit=int(h["limit"])))
    out.unified.update({str(k): str(v) for k, v in (resources.get("unified") or {}).items()})
    return out


def clamp_oom_score_adj(value: int, floor: int | None, field: str) -> int:
    if not -1000 <= value <= 1000:
        raise InvalidArgument(f"{field}: {value} is outside -1000..1000")
    if floor is not None and value < floor:
        return floor
    return value
