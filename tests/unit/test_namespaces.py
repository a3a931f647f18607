"""Namespace flags, join order, id map text, and opening namespace paths
(opening /proc/self/ns/* joins nothing)."""

from __future__ import annotations

import os

import pytest
from dockyard.runtime.kernel import syscalls
from dockyard.runtime.kernel.errors import SyscallError
from dockyard.runtime.namespaces import (
    CLONE_FLAGS,
    JOIN_ORDER,
    PROC_NAMES,
    format_idmap,
    new_flags,
    open_paths,
)
from dockyard.runtime.spec import NAMESPACE_TYPES, IDMap, Namespace


@pytest.mark.parametrize(("maps", "text"), [
    ([], ""),
    ([IDMap(container_id=0, host_id=1000, size=1)], "0 1000 1\n"),
    ([IDMap(container_id=0, host_id=100000, size=65536), IDMap(container_id=65536, host_id=5, size=1)],
     "0 100000 65536\n65536 5 1\n"),
])
def test_format_idmap(maps: list[IDMap], text: str) -> None:
    assert format_idmap(maps) == text


def ns(kind: str, path: str = "") -> Namespace:
    return Namespace(type=kind, path=path)


@pytest.mark.parametrize(("namespaces", "flags"), [
    ([], 0),
    ([ns("pid")], syscalls.CLONE_NEWPID),
    ([ns("mount"), ns("network")], syscalls.CLONE_NEWNS | syscalls.CLONE_NEWNET),
    ([ns("user")], 0),  # created on its own, first
    ([ns("user"), ns("ipc"), ns("uts")], syscalls.CLONE_NEWIPC | syscalls.CLONE_NEWUTS),
    ([ns("network", "/var/run/netns/x"), ns("pid")], syscalls.CLONE_NEWPID),  # joined, not created
    ([ns("cgroup"), ns("time")], syscalls.CLONE_NEWCGROUP | syscalls.CLONE_NEWTIME),
    ([ns(t) for t in NAMESPACE_TYPES],
     syscalls.CLONE_NEWPID | syscalls.CLONE_NEWNET | syscalls.CLONE_NEWNS | syscalls.CLONE_NEWIPC
     | syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWCGROUP | syscalls.CLONE_NEWTIME),
])
def test_new_flags(namespaces: list[Namespace], flags: int) -> None:
    assert new_flags(namespaces) == flags


def test_tables_cover_every_oci_type() -> None:
    assert set(CLONE_FLAGS) == set(NAMESPACE_TYPES) == set(PROC_NAMES) == set(JOIN_ORDER)
    assert len(set(CLONE_FLAGS.values())) == len(CLONE_FLAGS)


def test_join_order() -> None:
    """user last (inside it, host-owned namespaces could not be joined), mount just before it."""
    assert JOIN_ORDER[-1] == "user"
    assert JOIN_ORDER[-2] == "mount"


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_open_paths_sorted_by_join_order() -> None:
    joins = [(kind, f"/proc/self/ns/{PROC_NAMES[kind]}") for kind in ("mount", "network", "user", "uts")]
    opened = open_paths(joins)
    try:
        assert [kind for kind, _, _ in opened] == ["uts", "network", "mount", "user"]
        for kind, fd, path in opened:
            assert path == f"/proc/self/ns/{PROC_NAMES[kind]}"
            # the fd is the namespace the path names
            assert os.fstat(fd).st_ino == os.stat(path).st_ino
            assert not os.get_inheritable(fd)
    finally:
        for _, fd, _ in opened:
            os.close(fd)


def test_open_paths_empty() -> None:
    assert open_paths([]) == []


def test_open_paths_missing_closes_the_rest() -> None:
    missing = "/proc/self/ns/does-not-exist"
    # user sorts last, so ipc and mount are already open when it fails
    joins = [("user", missing), ("mount", "/proc/self/ns/mnt"), ("ipc", "/proc/self/ns/ipc")]
    before = _fds()
    with pytest.raises(SyscallError) as info:
        open_paths(joins)
    assert _fds() == before
    assert info.value.target == missing
    assert info.value.errno != 0
    assert "user" in info.value.op
    assert missing in str(info.value)


def test_join_calls_setns_in_join_order_with_each_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Joining by path (the recording syscalls of tests/unit/recording_syscalls.py): the paths are
    opened in join order (user last, mount before it), then setns is called once per namespace with
    its fd, its CLONE_NEW* type and the path for the error message, in that order."""
    from recording_syscalls import RecordingSyscalls

    from dockyard.runtime import namespaces

    fake = RecordingSyscalls().install(monkeypatch, namespaces)
    kinds = ("user", "network", "mount", "ipc", "uts")
    opened = open_paths([(kind, f"/proc/self/ns/{PROC_NAMES[kind]}") for kind in kinds])
    try:
        namespaces.join(opened)
    finally:
        for _, fd, _ in opened:
            os.close(fd)
    assert fake.names() == ["setns"] * 5
    assert [(flag, path) for _, flag, path in fake.of("setns")] == [
        (syscalls.CLONE_NEWIPC, "/proc/self/ns/ipc"), (syscalls.CLONE_NEWUTS, "/proc/self/ns/uts"),
        (syscalls.CLONE_NEWNET, "/proc/self/ns/net"), (syscalls.CLONE_NEWNS, "/proc/self/ns/mnt"),
        (syscalls.CLONE_NEWUSER, "/proc/self/ns/user")]
    assert [fd for fd, _, _ in fake.of("setns")] == [fd for _, fd, _ in opened]


def test_a_refused_setns_stops_the_join(monkeypatch: pytest.MonkeyPatch) -> None:
    from recording_syscalls import RecordingSyscalls

    from dockyard.runtime import namespaces

    fake = RecordingSyscalls().install(monkeypatch, namespaces)
    fake.fails["setns"] = SyscallError("setns", "/proc/self/ns/net", 1)
    with pytest.raises(SyscallError):
        namespaces.join([("network", 5, "/proc/self/ns/net"), ("user", 6, "/proc/self/ns/user")])
    assert len(fake.of("setns")) == 1
