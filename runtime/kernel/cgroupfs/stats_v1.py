"""cgroup v1 files -> the ``data`` object of ``runc events --stats``.

Pure: ``read(controller, file)`` returns a file's text or None when the
hierarchy or file is missing, and the caller supplies it (the manager reads
the real tree, tests pass a dict).  Units follow runc: CPU times in
nanoseconds, memory in bytes, and ``max`` read as 2**64-1.
"""

from __future__ import annotations

from .files import parse_flat_keyed, parse_int

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Read = Callable[[str, str], str | None]

# cpuacct.stat counts USER_HZ ticks, which is 100 on every Linux ABI.
_USER_HZ = 100
_NS = 1_000_000_000


def _ints(text: str | None) -> list[int]:
    return [int(t) for t in (text or "").split()]


def cpu(read: Read) -> dict[str, Any]:
    usage: dict[str, Any] = {"total": parse_int(read("cpuacct", "cpuacct.usage")),
                             "percpu": _ints(read("cpuacct", "cpuacct.usage_percpu"))}
    user_ns = read("cpuacct", "cpuacct.usage_user")
    sys_ns = read("cpuacct", "cpuacct.usage_sys")
    if user_ns is not None and sys_ns is not None:
        usage["user"], usage["kernel"] = parse_int(user_ns), parse_int(sys_ns)
    else:
        ticks = parse_flat_keyed(read("cpuacct", "cpuacct.stat") or "")
        usage["user"] = ticks.get("user", 0) * _NS // _USER_HZ
        usage["kernel"] = ticks.get("system", 0) * _NS // _USER_HZ
    percpu_user = read("cpuacct", "cpuacct.usage_percpu_user")
    percpu_sys = read("cpuacct", "cpuacct.usage_percpu_sys")
    if percpu_user is not None and percpu_sys is not None:
        usage["percpu_user"], usage["percpu_kernel"] = _ints(percpu_user), _ints(percpu_sys)
    stat = parse_flat_keyed(read("cpu", "cpu.stat") or "")
    throttling = {"periods": stat.get("nr_periods", 0),
                  "throttledPeriods": stat.get("nr_throttled", 0),
                  "throttledTime": stat.get("throttled_time", 0)}
    return {"usage": usage, "throttling": throttling}


def _memory_entry(read: Read, prefix: str) -> dict[str, int]:
    return {
        "limit": parse_int(read("memory", f"{prefix}.limit_in_bytes")),
        "usage": parse_int(read("memory", f"{prefix}.usage_in_bytes")),
        "max": parse_int(read("memory", f"{prefix}.max_usage_in_bytes")),
        "failcnt": parse_int(read("memory", f"{prefix}.failcnt")),
    }


def memory(read: Read) -> dict[str, Any]:
    raw = parse_flat_keyed(read("memory", "memory.stat") or "")
    oom = parse_flat_keyed(read("memory", "memory.oom_control") or "")
    return {
        "cache": raw.get("cache", 0),
        "usage": _memory_entry(read, "memory"),
        "swap": _memory_entry(read, "memory.memsw"),
        "kernel": _memory_entry(read, "memory.kmem"),
        "kernelTCP": _memory_entry(read, "memory.kmem.tcp"),
        "raw": raw,
        "oom_kill_disable": oom.get("oom_kill_disable", 0) == 1,
        "under_oom": oom.get("under_oom", 0) == 1,
    }


def pids(read: Read) -> dict[str, int]:
    return {"current": parse_int(read("pids", "pids.current")),
            "limit": parse_int(read("pids", "pids.max"))}


def blkio_entries(text: str | None) -> list[dict[str, Any]]:
    """``MAJ:MIN Op VALUE`` lines; the closing ``Total N`` line is dropped."""
    out: list[dict[str, Any]] = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, _, minor = parts[0].partition(":")
            out.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
        elif len(parts) == 2 and ":" in parts[0]:
            major, _, minor = parts[0].partition(":")
            out.append({"major": int(major), "minor": int(minor), "op": "", "value": int(parts[1])})
    return out


def blkio(read: Read) -> dict[str, Any]:
    # BFQ's files when that scheduler is in use, otherwise the throttle
    # layer's, which count every I/O whatever the scheduler (runc's order
    # after CFQ's removal).
    prefix = "blkio.bfq" if read("blkio", "blkio.bfq.io_service_bytes_recursive") is not None \
        else "blkio.throttle"
    return {
        "ioServiceBytesRecursive": blkio_entries(read("blkio", f"{prefix}.io_service_bytes_recursive")),
        "ioServicedRecursive": blkio_entries(read("blkio", f"{prefix}.io_serviced_recursive")),
    }


def hugetlb(read: Read, sizes: list[str]) -> dict[str, Any]:
    return {
        size: {"usage": parse_int(read("hugetlb", f"hugetlb.{size}.usage_in_bytes")),
               "max": parse_int(read("hugetlb", f"hugetlb.{size}.max_usage_in_bytes")),
               "failcnt": parse_int(read("hugetlb", f"hugetlb.{size}.failcnt"))}
        for size in sizes
    }


def collect(read: Read, hugepage_sizes: list[str]) -> dict[str, Any]:
    return {"cpu": cpu(read), "memory": memory(read), "pids": pids(read),
            "blkio": blkio(read), "hugetlb": hugetlb(read, hugepage_sizes)}
