"""linux.resources.unified: raw cgroup v2 file -> value pairs.

Keys are file names inside the container's cgroup, never paths: a ``/`` or
``..`` could write outside it.  ``cgroup.procs``, ``cgroup.threads`` and
``cgroup.kill`` move or kill processes, which is not a resource setting, and
are refused.  On cgroup v1 there is nowhere to write them, so a non-empty map
is an error naming the field (runc's ErrV1NoUnified).
"""

from __future__ import annotations

from ..kernel.errors import InvalidSpec
from . import spec_values as sv

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

FIELD = "linux.resources.unified"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_SUFFIX_CHARS = _NAME_CHARS | {"."}
_REFUSED = frozenset({"cgroup.procs", "cgroup.threads", "cgroup.kill"})


def _is_file_name(key: str) -> bool:
    """``<controller>.<name>``: ``[a-z0-9_]+`` then a dot then ``[a-z0-9_.]+``.
    Plain string code: ``re`` stays off the hot paths.  One final
    newline is allowed, as the ``$`` of the regex this replaced allowed it
    (the write then fails naming the file); kept so that dropping ``re``
    changed no accepted input."""
    head, _, tail = key.removesuffix("\n").partition(".")
    return bool(head) and bool(tail) and set(head) <= _NAME_CHARS and set(tail) <= _SUFFIX_CHARS


def entries(resources: dict[str, Any]) -> list[tuple[str, str]]:
    raw = sv.section(resources, "unified", FIELD)
    out: list[tuple[str, str]] = []
    for key, value in raw.items():
        field = f"{FIELD}[{key!r}]"
        if "/" in key or ".." in key or not _is_file_name(key):
            raise InvalidSpec(field, "must be a file name like 'memory.high' (no '/' or '..')")
        if key in _REFUSED:
            raise InvalidSpec(field, f"{key} moves or kills processes and cannot be set as a resource")
        if not isinstance(value, str):
            raise InvalidSpec(field, f"value must be a string, not {type(value).__name__}")
        out.append((key, value))
    return out


def controller_of(key: str) -> str:
    """``memory.high`` -> ``memory``: the controller that provides the file."""
    return key.split(".", 1)[0]


def reject_on_v1(resources: dict[str, Any]) -> None:
    if sv.section(resources, "unified", FIELD):
        raise InvalidSpec(FIELD, "cgroup v2 settings cannot be applied on a cgroup v1 host")
