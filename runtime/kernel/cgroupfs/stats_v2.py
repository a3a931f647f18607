"""cgroup v2 files -> the ``data`` object of ``runc events --stats``.

Pure: ``read(file)`` returns the text of a file in the container's cgroup
or None.  The shape and units are v1's, converted as runc does: v2 counts
CPU in microseconds (reported in ns), and its swap figures exclude memory
while v1's memsw included it, so swap is reported as memory + swap.
"""

from __future__ import annotations

from .files import parse_flat_keyed, parse_int

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Read = Callable[[str], str | None]

_UNLIMITED = (1 << 64) - 1


def cpu(read: Read) -> dict[str, Any]:
    stat = parse_flat_keyed(read("cpu.stat") or "")
    return {
        "usage": {"total": stat.get("usage_usec", 0) * 1000,
                  "user": stat.get("user_usec", 0) * 1000,
                  "kernel": stat.get("system_usec", 0) * 1000,
                  "percpu": []},
        "throttling": {"periods": stat.get("nr_periods", 0),
                       "throttledPeriods": stat.get("nr_throttled", 0),
                       "throttledTime": stat.get("throttled_usec", 0) * 1000},
    }


def _add(a: int, b: int) -> int:
    return _UNLIMITED if _UNLIMITED in (a, b) else a + b


def memory(read: Read) -> dict[str, Any]:
    raw = parse_flat_keyed(read("memory.stat") or "")
    events = parse_flat_keyed(read("memory.events") or "")
    current = parse_int(read("memory.current"))
    limit = parse_int(read("memory.max"))
    swap_current = parse_int(read("memory.swap.current"))
    swap_limit = parse_int(read("memory.swap.max"))
    return {
        "cache": raw.get("file", 0),
        "usage": {"limit": limit, "usage": current, "max": parse_int(read("memory.peak")),
                  "failcnt": events.get("max", 0)},
        "swap": {"limit": _add(limit, swap_limit), "usage": current + swap_current,
                 "max": 0, "failcnt": 0},
        "raw": raw,
        "oom_events": events.get("oom", 0),
        "oom_kill": events.get("oom_kill", 0),
    }


def pids(read: Read) -> dict[str, int]:
    return {"current": parse_int(read("pids.current")), "limit": parse_int(read("pids.max"))}


def io(read: Read) -> dict[str, Any]:
    """``io.stat`` lines ``MAJ:MIN rbytes=N wbytes=N rios=N wios=N ...``."""
    service_bytes: list[dict[str, Any]] = []
    serviced: list[dict[str, Any]] = []
    for line in (read("io.stat") or "").splitlines():
        parts = line.split()
        if not parts:
            continue
        major, _, minor = parts[0].partition(":")
        if not (major.isdigit() and minor.isdigit()):
            continue
        kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        for key, op, target in (("rbytes", "Read", service_bytes), ("wbytes", "Write", service_bytes),
                                ("rios", "Read", serviced), ("wios", "Write", serviced)):
            if key in kv:
                target.append({"major": int(major), "minor": int(minor), "op": op, "value": int(kv[key])})
    return {"ioServiceBytesRecursive": service_bytes, "ioServicedRecursive": serviced}


def hugetlb(read: Read, sizes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in sizes:
        events = parse_flat_keyed(read(f"hugetlb.{size}.events") or "")
        out[size] = {"usage": parse_int(read(f"hugetlb.{size}.current")),
                     "max": 0,  # v2 keeps no peak; v1's max_usage has no counterpart
                     "failcnt": events.get("max", 0)}
    return out


def collect(read: Read, hugepage_sizes: list[str]) -> dict[str, Any]:
    return {"cpu": cpu(read), "memory": memory(read), "pids": pids(read),
            "blkio": io(read), "hugetlb": hugetlb(read, hugepage_sizes)}
