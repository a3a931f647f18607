"""linux.resources.cpu.cpus/mems, validated once for v1 and v2.

The kernel's list format is ``0-3,5,7-8``.  runc passes the string through;
its shape is checked here so that a typo is reported against the field
rather than as an EINVAL from the write.
"""

from __future__ import annotations

from ..kernel.errors import InvalidSpec
from . import spec_values as sv

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

FIELD = "linux.resources.cpu"


def _is_list(value: str) -> bool:
    """``N`` or ``N-M`` items joined by commas, with whitespace allowed
    around each item.  Digits are what ``str.isdecimal`` takes, as the
    regex ``\\d`` this replaced did (``re`` stays off the hot paths)."""
    for part in value.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdecimal() or (dash and not hi.isdecimal()):
            return False
    return True


def cpu_list(cpu: dict[str, Any], key: str) -> str | None:
    field = f"{FIELD}.{key}"
    value = sv.string(cpu, key, field)
    if value is None or value == "":
        return None
    if not _is_list(value):
        raise InvalidSpec(field, f"{value!r} is not a list like '0-3,5'")
    for part in value.split(","):
        lo, _, hi = part.strip().partition("-")
        if hi and int(hi) < int(lo):
            raise InvalidSpec(field, f"range {part.strip()!r} runs backwards")
    return value.replace(" ", "")


def writes(resources: dict[str, Any]) -> list[tuple[str, str]]:
    """The same two files on v1 and v2."""
    cpu = sv.section(resources, "cpu", FIELD)
    out: list[tuple[str, str]] = []
    cpus = cpu_list(cpu, "cpus")
    mems = cpu_list(cpu, "mems")
    if cpus is not None:
        out.append(("cpuset.cpus", cpus))
    if mems is not None:
        out.append(("cpuset.mems", mems))
    return out
