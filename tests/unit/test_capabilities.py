"""Capability names <-> masks."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.runtime.kernel.capabilities import CAPABILITIES, last_cap, to_mask, to_names
from dockyard.runtime.kernel.errors import InvalidSpec, SyscallError


def test_table_is_complete_and_dense() -> None:
    assert sorted(CAPABILITIES.values()) == list(range(41))
    assert CAPABILITIES["CAP_CHOWN"] == 0
    assert CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert CAPABILITIES["CAP_AUDIT_WRITE"] == 29
    assert CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40


@pytest.mark.parametrize(("names", "last", "mask"), [
    ([], 40, 0),
    (["CAP_CHOWN"], 40, 1),
    (["CAP_KILL", "CAP_NET_BIND_SERVICE"], 40, 1 << 5 | 1 << 10),
    (["CAP_KILL", "CAP_KILL"], 40, 1 << 5),
    (["CAP_SETFCAP", "CAP_MAC_OVERRIDE"], 40, 1 << 31 | 1 << 32),
    (["CAP_BPF", "CAP_CHECKPOINT_RESTORE"], 40, 1 << 39 | 1 << 40),
    # An older kernel does not know the newest ones: they are dropped.
    (["CAP_CHOWN", "CAP_PERFMON", "CAP_CHECKPOINT_RESTORE"], 37, 1),
])
def test_to_mask(names: list[str], last: int, mask: int) -> None:
    assert to_mask(names, "process.capabilities.bounding", last) == mask


@pytest.mark.parametrize("bad", ["CAP_FOO", "cap_chown", "CHOWN", "", 3])
def test_to_mask_unknown_names_the_field(bad: object) -> None:
    with pytest.raises(InvalidSpec) as info:
        to_mask(["CAP_CHOWN", bad], "process.capabilities.effective", 40)  # type: ignore[list-item]
    assert info.value.field == "process.capabilities.effective[1]"


@pytest.mark.parametrize(("mask", "names"), [
    (0, []),
    (1 << 5 | 1, ["CAP_CHOWN", "CAP_KILL"]),
    (1 << 40 | 1 << 21, ["CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"]),
    (1 << 50 | 1 << 1, ["CAP_DAC_OVERRIDE"]),
    ((1 << 41) - 1, sorted(CAPABILITIES, key=CAPABILITIES.__getitem__)),
])
def test_to_names(mask: int, names: list[str]) -> None:
    assert to_names(mask) == names


def test_round_trip() -> None:
    names = sorted(CAPABILITIES, key=CAPABILITIES.__getitem__)
    assert to_names(to_mask(names, "f", 40)) == names


@pytest.mark.parametrize(("content", "value"), [("40\n", 40), ("37", 37)])
def test_last_cap_reads_file(tmp_path: Path, content: str, value: int) -> None:
    path = tmp_path / "cap_last_cap"
    path.write_text(content)
    assert last_cap(str(path)) == value


@pytest.mark.parametrize("content", [None, "forty\n"])
def test_last_cap_errors(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "cap_last_cap"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SyscallError) as info:
        last_cap(str(path))
    assert info.value.target == str(path)
