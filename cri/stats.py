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
* Pressure stall information (cpu/memory/io.pressure) exists only in cgroup2
  directories: the cgroup's own on v2, its directory in the cgroup2
  hierarchy at <root>/unified on a hybrid host (dockyard-runc, like runc,
  puts every container there too); a v1-only host has none, and then CRI
  carries no psi, as cAdvisor reports none.  Each file holds a "some" and a
  "full" line (cpu's "full" is all zeros before Linux 5.13's cgroup cpu
  full), with avg10/avg60/avg300 percentages and the total stall in
  microseconds, which is what CRI's PsiData carries.
"""

from __future__ import annotations

import asyncio
import os
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


class CgroupReader:
    """What CRI stats need from a cgroup, and nothing more.

    Measured with 110 pods (bench/density.py): reading a container's stats
    through the runtime's ``stats.of_cgroup`` cost about 4 ms of CPU, most
    of it parsing /proc/self/mountinfo (a node's is long: every pod adds its
    rootfs, shm and netns mounts) to find the cgroup hierarchies, checking
    each hierarchy's directory, and reading every file ``runc events
    --stats`` prints (blkio, hugetlb, kmem, swap...) of which CRI uses four.
    Here the cgroup mount lines are taken from mountinfo once (the daemon
    never mounts cgroup filesystems, and a host whose cgroups are remounted
    under a running node has lost its containers' cgroups anyway), a
    container's placement is kept until ``forget``, and only cpu usage,
    memory usage, limit and stat, pids.current and the cgroup2 pressure
    files are read.
    """

    def __init__(self, root: str = "/sys/fs/cgroup", mountinfo_text: str | None = None) -> None:
        self.root = root
        self._mountinfo = mountinfo_text
        self._mode: Any = None
        self._placements: dict[str, tuple[str, Any]] = {}

    def _layout(self) -> tuple[str, Any]:
        from dockyard.runtime.kernel.cgroupfs.mode import detect, read_mountinfo

        if self._mountinfo is None:
            self._mountinfo = "".join(line for line in read_mountinfo().splitlines(keepends=True)
                                      if " - cgroup" in line)
        if self._mode is None:
            self._mode = detect(self.root, self._mountinfo)
        return self._mountinfo, self._mode

    def placement(self, cgroups_path: str, object_id: str) -> Any:
        from dockyard.runtime.kernel.cgroupfs.locate import locate
        from dockyard.runtime.kernel.cgroupfs.systemd_path import is_systemd_path, slice_dir

        held = self._placements.get(object_id)
        if held is not None and held[0] == cgroups_path:
            return held[1]
        mountinfo, mode = self._layout()
        # The systemd driver's slice:prefix:name (a scope), and a bare slice
        # name (a pod's slice) for its nested directory.
        systemd = is_systemd_path(cgroups_path)
        where = locate(cgroups_path if systemd else slice_dir(cgroups_path), object_id, root=self.root, mode=mode,
                       mountinfo_text=mountinfo, systemd=systemd)
        self._placements[object_id] = (cgroups_path, where)
        return where

    def forget(self, object_id: str) -> None:
        self._placements.pop(object_id, None)

    def read(self, cgroups_path: str, object_id: str) -> dict[str, Any] | None:
        """runc-style stats (cpu usage total, memory usage/limit/raw, pids current) of
        the cgroup; None when it does not exist (the container is gone) or cannot be read."""
        from dockyard.runtime.kernel.cgroupfs import files
        from dockyard.runtime.kernel.cgroupfs.mode import Mode
        from dockyard.runtime.kernel.errors import RuntimeFault

        try:
            where = self.placement(cgroups_path, object_id)
            v2 = where.mode is Mode.V2
            dirs = {"": where.v2_path} if v2 else (where.v1_dirs or {})

            def read(controller: str, name: str) -> str | None:
                d = dirs.get("" if v2 else controller)
                return None if d is None else files.read_optional(os.path.join(d, name))
            if v2:
                cpu_text = read("cpu", "cpu.stat")
                if cpu_text is None:
                    return None
                cpu_ns = parse_flat_keyed(cpu_text).get("usage_usec", 0) * 1000
                usage, limit = read("memory", "memory.current"), read("memory", "memory.max")
            else:
                cpu_text = read("cpuacct", "cpuacct.usage")
                if cpu_text is None:
                    return None
                cpu_ns = parse_int(cpu_text)
                usage, limit = read("memory", "memory.usage_in_bytes"), read("memory", "memory.limit_in_bytes")
            raw = parse_flat_keyed(read("memory", "memory.stat") or "")
            pids = read("pids", "pids.current")
            out: dict[str, Any] = {"cpu": {"usage": {"total": cpu_ns}},
                                   "memory": {"usage": {"usage": parse_int(usage), "limit": parse_int(limit)},
                                              "raw": raw},
                                   "pids": {"current": parse_int(pids)}}
            psi_dir = where.v2_path if v2 else (where.unified[1] if where.unified is not None else "")
            psi = {}
            for resource in ("cpu", "memory", "io") if psi_dir else ():
                text = files.read_optional(os.path.join(psi_dir, f"{resource}.pressure"))
                if text is not None:
                    psi[resource] = text
            if psi:
                out["psi"] = psi
            return out
        except (RuntimeFault, OSError, ValueError):
            return None


def pressure_message(text: str | None) -> api_pb2.PsiStats | None:
    """A cgroup2 <resource>.pressure file -> CRI PsiStats; None without one (pure).

    ``some avg10=0.12 avg60=0.00 avg300=0.00 total=1234`` and a ``full``
    line; an unreadable line leaves its half empty rather than guessing."""
    if text is None:
        return None
    out = api_pb2.PsiStats()
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind not in ("some", "full"):
            continue
        fields = dict(item.partition("=")[::2] for item in rest.split())
        try:
            data = api_pb2.PsiData(Total=int(fields["total"]), Avg10=float(fields["avg10"]),
                                   Avg60=float(fields["avg60"]), Avg300=float(fields["avg300"]))
        except (KeyError, ValueError):
            continue
        (out.Some if kind == "some" else out.Full).CopyFrom(data)
    return out


def _psi(stats: Mapping[str, Any] | None, resource: str) -> api_pb2.PsiStats | None:
    texts = stats.get("psi") if stats is not None else None
    return pressure_message(texts.get(resource)) if isinstance(texts, Mapping) else None


def parse_int(text: str | None) -> int:
    """A cgroup file's single number; "max" is 2**64-1 as runc reads it; missing is 0 (pure)."""
    if text is None:
        return 0
    text = text.strip()
    if text == "max":
        return (1 << 64) - 1
    return int(text) if text else 0


def parse_flat_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat) (pure)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value:
            try:
                out[key] = int(value)
            except ValueError:
                continue
    return out


Target = tuple[str, str]  # (cgroups path, object id)


class StatsSampler:
    """Keeps the previous CPU sample per object id for the nanocores rate.

    Requests for many objects (ListPodSandboxStats, ListContainerStats) read
    all their cgroups in one worker-thread call instead of a thread hop each,
    and the first-sample pause is taken once for all new objects together.
    """

    def __init__(self, reader: CgroupReader | None = None) -> None:
        self._prev: dict[str, Sample] = {}
        self.reader = reader or CgroupReader()

    def forget(self, object_id: str) -> None:
        self._prev.pop(object_id, None)
        self.reader.forget(object_id)

    def _read_all(self, targets: list[Target]) -> list[tuple[dict[str, Any] | None, int]]:
        out = []
        for path, object_id in targets:
            stats = self.reader.read(path, object_id) if path else None
            out.append((stats, time.time_ns()))
        return out

    async def sample(self, cgroups_path: str, object_id: str) -> tuple[dict[str, Any] | None, int, int]:
        """(stats, timestamp ns, nanocores)."""
        return (await self.sample_many([(cgroups_path, object_id)]))[0]

    async def sample_many(self, targets: list[Target]) -> list[tuple[dict[str, Any] | None, int, int]]:
        """(stats, timestamp ns, nanocores) of each target, in order."""
        if not targets:
            return []
        read = await asyncio.to_thread(self._read_all, targets)
        fresh = [i for i, ((_, object_id), (stats, _)) in enumerate(zip(targets, read))
                 if stats is not None and object_id not in self._prev]
        if fresh:
            # A rate needs two samples: new objects get a second one after a short pause.
            for i in fresh:
                stats, at = read[i]
                assert stats is not None
                self._prev[targets[i][1]] = Sample(at, cpu_total_ns(stats))
            await asyncio.sleep(FIRST_SAMPLE_GAP_S)
            again = await asyncio.to_thread(self._read_all, [targets[i] for i in fresh])
            for i, second in zip(fresh, again):
                if second[0] is not None:
                    read[i] = second
        out: list[tuple[dict[str, Any] | None, int, int]] = []
        for (_, object_id), (stats, at) in zip(targets, read):
            if stats is None:
                out.append((None, at, 0))
                continue
            cur = Sample(at, cpu_total_ns(stats))
            prev = self._prev.get(object_id)
            self._prev[object_id] = cur
            out.append((stats, at, nano_cores(prev, cur)))
        return out


def cpu_usage(stats: Mapping[str, Any] | None, at_ns: int, cores: int) -> api_pb2.CpuUsage:
    if stats is None:
        return api_pb2.CpuUsage(timestamp=at_ns)
    return api_pb2.CpuUsage(
        timestamp=at_ns, usage_core_nano_seconds=api_pb2.UInt64Value(value=cpu_total_ns(stats)),
        usage_nano_cores=api_pb2.UInt64Value(value=cores), psi=_psi(stats, "cpu"),
    )


def io_message(stats: Mapping[str, Any] | None, at_ns: int) -> api_pb2.IoUsage | None:
    """Only pressure so far (CRI's IoUsage has nothing else); None where the cgroup has none."""
    psi = _psi(stats, "io")
    return None if psi is None else api_pb2.IoUsage(timestamp=at_ns, psi=psi)


def memory_message(stats: Mapping[str, Any] | None, at_ns: int) -> api_pb2.MemoryUsage:
    if stats is None:
        return api_pb2.MemoryUsage(timestamp=at_ns)
    usage, working, rss, faults, major = memory_usage(stats)
    limit = int(stats.get("memory", {}).get("usage", {}).get("limit", 0))
    msg = api_pb2.MemoryUsage(
        timestamp=at_ns, working_set_bytes=api_pb2.UInt64Value(value=working),
        usage_bytes=api_pb2.UInt64Value(value=usage), rss_bytes=api_pb2.UInt64Value(value=rss),
        page_faults=api_pb2.UInt64Value(value=faults), major_page_faults=api_pb2.UInt64Value(value=major),
        psi=_psi(stats, "memory"),
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


def network_message(counters: dict[str, dict[str, int]] | None, at_ns: int,
                    default_iface: str = "eth0") -> api_pb2.NetworkUsage | None:
    """Interface counters -> CRI NetworkUsage (pure); None when there are none (host network).

    Every interface but lo is listed in ``interfaces``, the default one too
    (``default_interface``: eth0, else the first), as containerd reports
    them: kubelet's Summary API copies ``interfaces`` into the pod's
    network.interfaces, which must list the pod's interfaces."""
    if counters is None:
        return None
    usage = api_pb2.NetworkUsage(timestamp=at_ns)
    for name, c in sorted(counters.items()):
        if name == "lo":
            continue
        usage.interfaces.append(api_pb2.NetworkInterfaceUsage(
            name=name, rx_bytes=api_pb2.UInt64Value(value=c["rx_bytes"]), rx_errors=api_pb2.UInt64Value(value=c["rx_errors"]),
            tx_bytes=api_pb2.UInt64Value(value=c["tx_bytes"]), tx_errors=api_pb2.UInt64Value(value=c["tx_errors"]),
        ))
    default = next((i for i in usage.interfaces if i.name == default_iface), None)
    if default is None and usage.interfaces:
        default = usage.interfaces[0]
    if default is not None:
        usage.default_interface.CopyFrom(default)
    return usage


def network_counters_many(netns_paths: list[str]) -> list[dict[str, dict[str, int]] | None]:
    """Counters inside each pod's netns (blocking); None for host-network pods ("")."""
    from .errors import CriError
    from .network.net_stats import net_stats_many

    wanted = [p for p in netns_paths if p]
    try:
        read = dict(zip(wanted, net_stats_many(wanted)))
    except CriError:
        read = {}
    return [read.get(p) if p else None for p in netns_paths]
