"""Container and pod usage: cgroup stats (v1 or v2, read by the runtime's leaf,
dockyard.runtime.kernel.cgroupfs), CPU nanocores from two samples, memory working set, the writable
layer's size, and the pod's network counters.

Facts:
* cpu usage is cumulative nanoseconds (cpuacct.usage on v1, cpu.stat
  usage_usec * 1000 on v2); a rate needs two samples.  The previous sample of
  each object is kept, and a first request takes a second sample after a
  short pause so that usage_nano_cores is never a guess.
* memory working set is what kubelet evicts on: usage minus inactive file
  pages (total_inactive_file in a v1 hierarchy, inactive_file on v2),
  floored at 0.  rss is total_rss (v1) or anon (v2).
* The pod cgroup aggregates its containers on both versions (v1 hierarchies
  account hierarchically here: memory.use_hierarchy is 1 by default).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cri_api.v1 import api_pb2

FIRST_SAMPLE_GAP_S = 0.1


@dataclass(frozen=True, slots=True)
class Sample:
    at_ns: int
    usage_ns: int


def nano_cores(prev: Sample | None, cur: Sample) -> int:
    """CPU rate between two samples in nanocores (pure); 0 without a usable previous one."""
    if prev is None or cur.at_ns <= prev.at_ns or cur.usage_ns < prev.usage_ns:
        return 0
    return (cur.usage_ns - prev.usage_ns) * 1_000_000_000 // (cur.at_ns - prev.at_ns)


def _raw(stats: Mapping[str, Any]) -> Mapping[str, int]:
    raw = stats.get("memory", {}).get("raw", {})
    return raw if isinstance(raw, Mapping) else {}


def cpu_total_ns(stats: Mapping[str, Any]) -> int:
    return int(stats.get("cpu", {}).get("usage", {}).get("total", 0))


def memory_usage(stats: Mapping[str, Any]) -> tuple[int, int, int, int, int]:
    """(usage, working set, rss, page faults, major page faults) from runc-style stats (pure)."""
    mem = stats.get("memory", {})
    usage = int(mem.get("usage", {}).get("usage", 0))
    raw = _raw(stats)
    inactive = int(raw.get("total_inactive_file", raw.get("inactive_file", 0)))
    working = max(0, usage - inactive)
    rss = int(raw.get("total_rss", raw.get("anon", 0)))
    faults = int(raw.get("total_pgfault", raw.get("pgfault", 0)))
    major = int(raw.get("total_pgmajfault", raw.get("pgmajfault", 0)))
    return usage, working, rss, faults, major


def cgroup_stats(cgroups_path: str, object_id: str) -> dict[str, Any] | None:
    """runc-style stats of a cgroup; None when it does not exist (container gone)."""
    from dockyard.runtime.kernel.cgroupfs import stats

    return stats.of_cgroup(cgroups_path, object_id)


class StatsSampler:
    """Keeps the previous CPU sample per object id for the nanocores rate."""

    def __init__(self) -> None:
        self._prev: dict[str, Sample] = {}

    def forget(self, object_id: str) -> None:
        self._prev.pop(object_id, None)

    async def sample(self, cgroups_path: str, object_id: str) -> tuple[dict[str, Any] | None, int, int]:
        """(stats, timestamp ns, nanocores)."""
        stats = await asyncio.to_thread(cgroup_stats, cgroups_path, object_id)
        now = time.time_ns()
        if stats is None:
            return None, now, 0
        cur = Sample(now, cpu_total_ns(stats))
        prev = self._prev.get(object_id)
        if prev is None:
            await asyncio.sleep(FIRST_SAMPLE_GAP_S)
            again = await asyncio.to_thread(cgroup_stats, cgroups_path, object_id)
            if again is not None:
                prev, stats, now = cur, again, time.time_ns()
                cur = Sample(now, cpu_total_ns(stats))
        self._prev[object_id] = cur
        return stats, now, nano_cores(prev, cur)


def cpu_usage(stats: Mapping[str, Any] | None, at_ns: int, cores: int) -> api_pb2.CpuUsage:
    if stats is None:
        return api_pb2.CpuUsage(timestamp=at_ns)
    return api_pb2.CpuUsage(
        timestamp=at_ns, usage_core_nano_seconds=api_pb2.UInt64Value(value=cpu_total_ns(stats)),
        usage_nano_cores=api_pb2.UInt64Value(value=cores),
    )


def memory_message(stats: Mapping[str, Any] | None, at_ns: int) -> api_pb2.MemoryUsage:
    if stats is None:
        return api_pb2.MemoryUsage(timestamp=at_ns)
    usage, working, rss, faults, major = memory_usage(stats)
    limit = int(stats.get("memory", {}).get("usage", {}).get("limit", 0))
    msg = api_pb2.MemoryUsage(
        timestamp=at_ns, working_set_bytes=api_pb2.UInt64Value(value=working),
        usage_bytes=api_pb2.UInt64Value(value=usage), rss_bytes=api_pb2.UInt64Value(value=rss),
        page_faults=api_pb2.UInt64Value(value=faults), major_page_faults=api_pb2.UInt64Value(value=major),
    )
    if 0 < limit < (1 << 62):
        msg.available_bytes.value = max(0, limit - working)
    return msg


def upper_dir(mounts: list[Any]) -> str:
    """The directory holding a snapshot's writes: overlay upperdir, or a bind mount's source (pure)."""
    for m in mounts:
        for opt in m.options:
            if opt.startswith("upperdir="):
                return str(opt[len("upperdir="):])
        if m.type == "bind":
            return str(m.source)
    return ""


def writable_layer(snapshotter: Any, key: str, at_ns: int) -> api_pb2.FilesystemUsage:
    """Bytes and inodes of a container's writable layer (blocking)."""
    from .errors import CriError
    from .disk_usage import tree_usage

    usage = api_pb2.FilesystemUsage(timestamp=at_ns, fs_id=api_pb2.FilesystemIdentifier(mountpoint=snapshotter.root))
    try:
        path = upper_dir(snapshotter.mounts(key))
        used, inodes = tree_usage(path) if path else (0, 0)
    except (CriError, OSError):
        return usage  # removed meanwhile: no layer left to measure
    usage.used_bytes.value = used
    usage.inodes_used.value = inodes
    return usage


def network_usage(netns_path: str, at_ns: int, default_iface: str = "eth0") -> api_pb2.NetworkUsage | None:
    """Interface counters inside the pod's netns (blocking); None for host-network pods."""
    if not netns_path:
        return None
    from .network.net_stats import net_stats
    from .errors import CriError

    try:
        counters = net_stats(netns_path)
    except CriError:
        return None
    usage = api_pb2.NetworkUsage(timestamp=at_ns)
    for name, c in sorted(counters.items()):
        if name == "lo":
            continue
        stats = api_pb2.NetworkInterfaceUsage(
            name=name, rx_bytes=api_pb2.UInt64Value(value=c["rx_bytes"]), rx_errors=api_pb2.UInt64Value(value=c["rx_errors"]),
            tx_bytes=api_pb2.UInt64Value(value=c["tx_bytes"]), tx_errors=api_pb2.UInt64Value(value=c["tx_errors"]),
        )
        if name == default_iface:
            usage.default_interface.CopyFrom(stats)
        else:
            usage.interfaces.append(stats)
    return usage
