"""``process.rlimits`` -> (resource, soft, hard) triples for setrlimit.

Facts: rlim_t is an unsigned 64-bit number and RLIM_INFINITY is its all-ones
value, which the OCI spec writes as 18446744073709551615; Python's
``resource`` module takes it as ``resource.RLIM_INFINITY`` (-1) and cannot
pass numbers above 2**63-1 at all, so the all-ones value is translated and
other numbers past 2**63-1 are refused.  soft > hard is not checked here:
setrlimit(2) reports it (EINVAL), as runc leaves it to the kernel.
"""

from __future__ import annotations

import resource

from .errors import InvalidSpec

TYPE_CHECKING = False  # see runtime/records.py: keeps typing out of the start path
if TYPE_CHECKING:
    from typing import Any

RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": resource.RLIMIT_CPU,
    "RLIMIT_FSIZE": resource.RLIMIT_FSIZE,
    "RLIMIT_DATA": resource.RLIMIT_DATA,
    "RLIMIT_STACK": resource.RLIMIT_STACK,
    "RLIMIT_CORE": resource.RLIMIT_CORE,
    "RLIMIT_RSS": resource.RLIMIT_RSS,
    "RLIMIT_NPROC": resource.RLIMIT_NPROC,
    "RLIMIT_NOFILE": resource.RLIMIT_NOFILE,
    "RLIMIT_MEMLOCK": resource.RLIMIT_MEMLOCK,
    "RLIMIT_AS": resource.RLIMIT_AS,
    "RLIMIT_LOCKS": 10,  # Linux's number; Python's resource module omits it
    "RLIMIT_SIGPENDING": resource.RLIMIT_SIGPENDING,
    "RLIMIT_MSGQUEUE": resource.RLIMIT_MSGQUEUE,
    "RLIMIT_NICE": resource.RLIMIT_NICE,
    "RLIMIT_RTPRIO": resource.RLIMIT_RTPRIO,
    "RLIMIT_RTTIME": resource.RLIMIT_RTTIME,
}

_U64_INFINITY = 2**64 - 1
_MAX_FINITE = 2**63 - 1


def _limit(entry: dict[str, Any], key: str, here: str) -> int:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(f"{here}.{key}", f"must be an integer, not {type(value).__name__}")
    if value == _U64_INFINITY:
        return resource.RLIM_INFINITY
    if not 0 <= value <= _MAX_FINITE:
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
