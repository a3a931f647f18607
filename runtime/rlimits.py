"""``process.rlimits`` -> (resource, soft, hard) triples for setrlimit.

Facts: rlim_t is an unsigned 64-bit number and RLIM_INFINITY is its all-ones
value, which the OCI spec writes as 18446744073709551615.  The limits are
set through libc (syscalls.setrlimit), which takes every rlim_t as it is;
Python's ``resource`` module could not pass numbers above 2**63-1.
soft > hard is not checked here: setrlimit(2) reports it (EINVAL), as runc
leaves it to the kernel.

The resource numbers are Linux's generic ones (asm-generic/resource.h),
which x86_64 and arm64 use; Alpha, MIPS and SPARC number a few differently
and are not targets (see syscalls.py).
"""

from __future__ import annotations

from .kernel.errors import InvalidSpec

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

RLIM_INFINITY = 2**64 - 1


def _limit(entry: dict[str, Any], key: str, here: str) -> int:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(f"{here}.{key}", f"must be an integer, not {type(value).__name__}")
    if not 0 <= value <= RLIM_INFINITY:
        raise InvalidSpec(f"{here}.{key}", f"{value} is out of range")
    return value


def parse_rlimits(rlimits: list[dict[str, Any]], field: str = "process.rlimits") -> tuple[tuple[int, int, int], ...]:
    """Validate ``process.rlimits``; each type at most once."""
    if not isinstance(rlimits, list):
        raise InvalidSpec(field, "must be a list")
    out: list[tuple[int, int, int]] = []
    seen: set[str] = set()
    for i, entry in enumerate(rlimits):
        here = f"{field}[{i}]"
        if not isinstance(entry, dict):
            raise InvalidSpec(here, "must be an object")
        kind = entry.get("type")
        if not isinstance(kind, str) or kind not in RLIMITS:
            raise InvalidSpec(f"{here}.type", f"unknown rlimit {kind!r}")
        if kind in seen:
            raise InvalidSpec(f"{here}.type", f"{kind} is listed twice")
        seen.add(kind)
        out.append((RLIMITS[kind], _limit(entry, "soft", here), _limit(entry, "hard", here)))
    return tuple(out)
