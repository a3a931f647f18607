"""process.rlimits validation."""

from __future__ import annotations

import resource
from typing import Any

import pytest

from dockyard.runtime.kernel.errors import InvalidSpec
from dockyard.runtime.rlimits import RLIMITS, parse_rlimits


def test_table_has_all_sixteen() -> None:
    assert len(RLIMITS) == 16
    assert sorted(RLIMITS.values()) == list(range(16))
    assert RLIMITS["RLIMIT_LOCKS"] == 10  # Python's resource module has no name for it


@pytest.mark.parametrize("name", sorted(n for n in RLIMITS if n != "RLIMIT_LOCKS"))
def test_numbers_are_the_hosts(name: str) -> None:
    # The table is written out (the runtime does not load `resource`); the
    # host's own numbers are the check.
    assert RLIMITS[name] == getattr(resource, name)


@pytest.mark.parametrize(("entries", "expected"), [
    ([], ()),
    ([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}], ((resource.RLIMIT_NOFILE, 1024, 4096),)),
    ([{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}, {"type": "RLIMIT_LOCKS", "soft": 5, "hard": 6}],
     ((resource.RLIMIT_CORE, 0, 0), (10, 5, 6))),
    # soft > hard is the kernel's to refuse.
    ([{"type": "RLIMIT_NPROC", "soft": 10, "hard": 5}], ((resource.RLIMIT_NPROC, 10, 5),)),
    ([{"type": "RLIMIT_MEMLOCK", "soft": 2**64 - 1, "hard": 2**64 - 1}],
     ((resource.RLIMIT_MEMLOCK, 2**64 - 1, 2**64 - 1),)),
    # rlim_t is unsigned 64-bit: every value up to infinity is the kernel's to judge
    ([{"type": "RLIMIT_STACK", "soft": 8 << 20, "hard": 2**63}],
     ((resource.RLIMIT_STACK, 8 << 20, 2**63),)),
])
def test_parse_rlimits(entries: list[dict[str, Any]], expected: tuple[tuple[int, int, int], ...]) -> None:
    assert parse_rlimits(entries) == expected


GOOD = {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}


@pytest.mark.parametrize(("change", "field"), [
    ({"type": "RLIMIT_FOO"}, "process.rlimits[1].type"),
    ({"type": "nofile"}, "process.rlimits[1].type"),
    ({"type": None}, "process.rlimits[1].type"),
    ({"type": "RLIMIT_CPU"}, "process.rlimits[1].type"),  # duplicate of entry 0
    ({"soft": None}, "process.rlimits[1].soft"),
    ({"soft": "1"}, "process.rlimits[1].soft"),
    ({"soft": False}, "process.rlimits[1].soft"),
    ({"hard": -1}, "process.rlimits[1].hard"),
    ({"hard": 2**64}, "process.rlimits[1].hard"),
])
def test_parse_rlimits_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    entry = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(InvalidSpec) as info:
        parse_rlimits([{"type": "RLIMIT_CPU", "soft": 1, "hard": 1}, entry])
    assert info.value.field == field


def test_parse_rlimits_shapes() -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_rlimits({"type": "RLIMIT_CPU"}, "p.rlimits")  # type: ignore[arg-type]
    assert info.value.field == "p.rlimits"
    with pytest.raises(InvalidSpec) as info:
        parse_rlimits([3])  # type: ignore[list-item]
    assert info.value.field == "process.rlimits[0]"
