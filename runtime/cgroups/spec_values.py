"""Typed reads of ``linux.resources`` values, each failure naming its field.

config.json arrives as plain JSON, so an int may be a bool, a string or a
float, and a section may be a list.  Every controller reads its values through
these helpers so that a bad value is always reported as
``InvalidSpec("linux.resources.<section>.<key>", ...)`` and never as a
``TypeError`` deep inside a writer.

JSON ``true`` is a Python ``int``; it is refused wherever a number is
expected, because ``"limit": true`` is a mistake, not the number 1.

The last two helpers turn values read here into the (file, text) writes the
controllers return; they live here rather than in a module of their own so
that a container start imports nothing more (runtime/kernel/lean/README.md).
"""

from __future__ import annotations

from ..kernel.errors import InvalidSpec

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
UINT64_MAX = (1 << 64) - 1


def _of_type(parent: dict[str, Any], key: str, field: str, kind: type, noun: str) -> Any:
    """``parent[key]`` if it is a ``kind``; None when absent or null."""
    value = parent.get(key)
    if value is not None and not isinstance(value, kind):
        raise InvalidSpec(field, f"must be {noun}, not {type(value).__name__}")
    return value


def section(parent: dict[str, Any], key: str, field: str) -> dict[str, Any]:
    """The object at ``parent[key]``; absent or null reads as empty."""
    value = _of_type(parent, key, field, dict, "an object")
    return {} if value is None else value


def items(parent: dict[str, Any], key: str, field: str) -> list[Any]:
    """The array at ``parent[key]``; absent or null reads as empty."""
    value = _of_type(parent, key, field, list, "an array")
    return [] if value is None else value


def entry(value: Any, field: str) -> dict[str, Any]:
    """One element of an array of objects."""
    if not isinstance(value, dict):
        raise InvalidSpec(field, f"must be an object, not {type(value).__name__}")
    return value


def integer(
    parent: dict[str, Any],
    key: str,
    field: str,
    *,
    minimum: int = INT64_MIN,
    maximum: int = INT64_MAX,
) -> int | None:
    """An integer in ``[minimum, maximum]``, or None when absent or null."""
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(field, f"must be an integer, not {type(value).__name__}")
    if value < minimum or value > maximum:
        raise InvalidSpec(field, f"{value} is outside [{minimum}, {maximum}]")
    return value


def required_integer(
    parent: dict[str, Any],
    key: str,
    field: str,
    *,
    minimum: int = INT64_MIN,
    maximum: int = INT64_MAX,
) -> int:
    value = integer(parent, key, field, minimum=minimum, maximum=maximum)
    if value is None:
        raise InvalidSpec(field, "is required")
    return value


def byte_limit(parent: dict[str, Any], key: str, field: str) -> int | None:
    """A memory byte count where 0 or absent means "not set" and -1 means
    unlimited (OCI linux.resources.memory.*)."""
    value = integer(parent, key, field)
    if value is None or value == 0:
        return None
    if value < -1:
        raise InvalidSpec(field, f"{value} is not a byte count (use -1 for unlimited)")
    return value


def boolean(parent: dict[str, Any], key: str, field: str) -> bool | None:
    value: bool | None = _of_type(parent, key, field, bool, "a boolean")
    return value


def string(parent: dict[str, Any], key: str, field: str) -> str | None:
    value: str | None = _of_type(parent, key, field, str, "a string")
    return value


def given(files: tuple[tuple[str, int | None], ...]) -> list[tuple[str, str]]:
    """A write for each (file, value) whose value is set, in order."""
    return [(name, str(value)) for name, value in files if value is not None]


def opened_then_set(bound: tuple[str, int | None], bounded: tuple[str, int | None]) -> list[tuple[str, str]]:
    """Writes for two files the kernel checks against each other on every write
    (v1's cfs quota and period, memsw and memory limit): with both set, ``bound``
    is first opened to -1 (unlimited, always accepted), then ``bounded`` written,
    then ``bound`` given its value unless that is -1; with one set, that one."""
    (bound_file, bound_value), (bounded_file, bounded_value) = bound, bounded
    if bound_value is not None and bounded_value is not None:
        return [(bound_file, "-1"), (bounded_file, str(bounded_value)),
                *([] if bound_value == -1 else [(bound_file, str(bound_value))])]
    return given((bounded, bound))
