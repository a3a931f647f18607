"""Default devices, linux.devices validation and mknod modes."""

from __future__ import annotations

import stat
from typing import Any

import pytest
from dockyard.runtime.cgroups import RUNC_DEFAULT_RULES
from dockyard.runtime.kernel.errors import InvalidSpec
from dockyard.runtime.rootfs.devices import (
    DEFAULT_DEVICES,
    DEFAULT_SYMLINKS,
    Device,
    mknod_mode,
    parse_devices,
)


def test_default_devices() -> None:
    assert {(d.path, d.major, d.minor) for d in DEFAULT_DEVICES} == {
        ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
        ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0)}
    assert all(d.type == "c" and d.file_mode == 0o666 and d.uid == d.gid == 0 for d in DEFAULT_DEVICES)


def test_default_symlinks() -> None:
    assert dict(DEFAULT_SYMLINKS) == {
        "/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
        "/dev/stderr": "/proc/self/fd/2", "/dev/ptmx": "pts/ptmx"}


@pytest.mark.parametrize(("kind", "major", "minor"), [
    ("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9), ("c", 5, 0),
    ("c", 5, 2), ("c", 136, None), ("c", None, None), ("b", None, None)])
def test_default_cgroup_rules_allow(kind: str, major: int | None, minor: int | None) -> None:
    """Every default device, pty slaves, /dev/ptmx and mknod of anything."""
    want: dict[str, Any] = {"allow": True, "type": kind,
                            "access": "rwm" if major is not None else "m"}
    if major is not None:
        want["major"] = major
    if minor is not None:
        want["minor"] = minor
    assert want in RUNC_DEFAULT_RULES


def test_default_cgroup_rules_only_allow() -> None:
    assert all(rule["allow"] is True for rule in RUNC_DEFAULT_RULES)
    assert len(RUNC_DEFAULT_RULES) == 11  # the defaults, ptys, ptmx, mknod of any, /dev/net/tun


@pytest.mark.parametrize(("entry", "expected"), [
    ({"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
     Device("/dev/fuse", "c", 10, 229, 0o666, 0, 0)),
    ({"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o660, "uid": 0, "gid": 6},
     Device("/dev/sda", "b", 8, 0, 0o660, 0, 6)),
    ({"path": "/dev/kmsg", "type": "u", "major": 1, "minor": 11, "uid": 1000},
     Device("/dev/kmsg", "u", 1, 11, 0o666, 1000, 0)),
    ({"path": "/dev/fifo", "type": "p"}, Device("/dev/fifo", "p", 0, 0, 0o666, 0, 0)),
    ({"path": "/run/x", "type": "c", "major": 1, "minor": 3, "fileMode": stat.S_IFCHR | 0o640},
     Device("/run/x", "c", 1, 3, 0o640, 0, 0)),
])
def test_parse_devices(entry: dict[str, Any], expected: Device) -> None:
    assert parse_devices([entry]) == (expected,)


GOOD = {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}


@pytest.mark.parametrize(("change", "field"), [
    ({"path": "dev/fuse"}, "linux.devices[1].path"),
    ({"path": None}, "linux.devices[1].path"),
    ({"path": "/dev/null"}, "linux.devices[1].path"),  # duplicate of entry 0
    ({"type": "x"}, "linux.devices[1].type"),
    ({"type": None}, "linux.devices[1].type"),
    ({"major": None}, "linux.devices[1].major"),
    ({"major": "10"}, "linux.devices[1].major"),
    ({"major": True}, "linux.devices[1].major"),
    ({"minor": -1}, "linux.devices[1].minor"),
    ({"fileMode": 1.5}, "linux.devices[1].fileMode"),
    ({"uid": -1}, "linux.devices[1].uid"),
    ({"gid": 2**32}, "linux.devices[1].gid"),
])
def test_parse_devices_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    entry = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    first = {"path": "/dev/null", "type": "c", "major": 1, "minor": 3}
    with pytest.raises(InvalidSpec) as info:
        parse_devices([first, entry])
    assert info.value.field == field


def test_parse_devices_not_a_list_or_object() -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_devices({"path": "/dev/x"}, "spec.devices")  # type: ignore[arg-type]
    assert info.value.field == "spec.devices"
    with pytest.raises(InvalidSpec) as info:
        parse_devices(["x"])  # type: ignore[list-item]
    assert info.value.field == "linux.devices[0]"


@pytest.mark.parametrize(("kind", "mode", "expected"), [
    ("c", 0o666, stat.S_IFCHR | 0o666),
    ("u", 0o600, stat.S_IFCHR | 0o600),
    ("b", 0o660, stat.S_IFBLK | 0o660),
    ("p", 0o644, stat.S_IFIFO | 0o644),
])
def test_mknod_mode(kind: str, mode: int, expected: int) -> None:
    assert mknod_mode(Device("/dev/x", kind, 1, 1, mode, 0, 0)) == expected
