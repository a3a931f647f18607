"""runtime/rootfs/setup.py: its pure parts, and its mount planning through the recording syscalls."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from recording_syscalls import Call, RecordingSyscalls, fd_path

from dockyard.runtime.kernel import syscalls
from dockyard.runtime.kernel.errors import SyscallError
from dockyard.runtime.kernel.lean.records import replace
from dockyard.runtime.rootfs import setup
from dockyard.runtime.rootfs.setup import RootfsPlan, mount_point_of
from dockyard.runtime.spec import Mount

MOUNTINFO = "\n".join([
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
    "30 22 0:25 / /work rw - ext4 /dev/vdb rw",
    "31 30 0:26 / /work/main/build rw - tmpfs tmpfs rw",
    "32 22 0:27 / /mnt/with\\040space rw - tmpfs tmpfs rw",
    "33 22 0:28 / /workshop rw - tmpfs tmpfs rw",
])


@pytest.mark.parametrize(("path", "expected"), [
    ("/", "/"),
    ("/usr/lib", "/"),
    ("/work", "/work"),
    ("/work/main/rootfs", "/work"),
    ("/work/main/build/bundles/busybox/rootfs", "/work/main/build"),
    ("/workshop/x", "/workshop"),          # a prefix by characters is not a parent
    ("/mnt/with space/rootfs", "/mnt/with space"),
])
def test_mount_point_of(path: str, expected: str) -> None:
    assert mount_point_of(path, MOUNTINFO) == expected


# --- mount planning, through the recording syscalls (tests/unit/recording_syscalls.py) ---------
# The destinations are resolved for real inside a temporary rootfs (securejoin opens them
# O_PATH); only the mount calls themselves are recorded instead of made.


def _plan(rootfs: Path, **changes: Any) -> RootfsPlan:
    base = RootfsPlan(rootfs=str(rootfs), readonly=False, propagation="", mounts=(), devices=(),
                      create_default_devices=False, masked_paths=(), readonly_paths=(), no_pivot=False,
                      private_netns=True, private_cgroupns=True, cgroup_v1_mounts=(), cgroup_v2_mount="",
                      cgroup_paths={})
    return replace(base, **changes)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> RecordingSyscalls:
    return RecordingSyscalls().install(monkeypatch, setup)


@pytest.mark.parametrize(("options", "propagation"), [
    (("nosuid", "nodev", "mode=755"), ()),
    (("nosuid", "size=64k", "rprivate"), (syscalls.MS_REC | syscalls.MS_PRIVATE,)),
    (("ro", "shared", "rslave"), (syscalls.MS_SHARED, syscalls.MS_REC | syscalls.MS_SLAVE)),
])
def test_a_filesystem_mount_goes_onto_its_resolved_destination(
        recorded: RecordingSyscalls, tmp_path: Path, options: tuple[str, ...], propagation: tuple[int, ...]) -> None:
    """One mount(2) of the filesystem with its flags and data onto /proc/self/fd/N of the destination
    (made inside the rootfs), then one mount(2) per propagation option, in the spec's order."""
    (pm,) = setup.plan_mounts((Mount("/run/app", "tmpfs", "tmpfs", options),))
    setup._mount_one(0, pm, _plan(tmp_path), {})
    assert (tmp_path / "run" / "app").is_dir()
    first, *rest = recorded.calls
    source, target, fstype, flags, data = first.args
    assert (first.name, source, fstype, flags, data) == ("mount", "tmpfs", "tmpfs", pm.opts.flags, pm.opts.data or None)
    assert fd_path(target)
    assert [(c.name, c.args[0], c.args[3]) for c in rest] == [("mount", None, p) for p in propagation]
    assert all(fd_path(c.args[1]) for c in rest)


@pytest.mark.parametrize(("options", "bind_flags", "remount_with"), [
    (("rbind",), syscalls.MS_BIND | syscalls.MS_REC, None),
    (("bind", "ro"), syscalls.MS_BIND, syscalls.MS_RDONLY),
    (("rbind", "ro", "nosuid"), syscalls.MS_BIND | syscalls.MS_REC, syscalls.MS_RDONLY | syscalls.MS_NOSUID),
])
def test_a_bind_mount_and_its_flags_are_two_calls(recorded: RecordingSyscalls, tmp_path: Path,
                                                  options: tuple[str, ...], bind_flags: int,
                                                  remount_with: int | None) -> None:
    """A bind ignores every flag but MS_BIND|MS_REC: ro, nosuid... take a second MS_REMOUNT|MS_BIND call
    on the mount, which keeps the flags it already has."""
    source = tmp_path / "volume"
    source.mkdir()
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (pm,) = setup.plan_mounts((Mount("/data", "bind", str(source), options),))
    setup._mount_one(0, pm, _plan(rootfs), {})
    assert (rootfs / "data").is_dir()
    assert recorded.names() == ["mount"] * (1 if remount_with is None else 2)
    src, target, fstype, flags, _data = recorded.of("mount")[0]
    assert (src, fstype, flags) == (str(source), None, bind_flags) and fd_path(target)
    if remount_with is not None:
        src, target, fstype, flags, _data = recorded.of("mount")[1]
        assert src is None and fd_path(target) and fstype is None
        assert flags & (syscalls.MS_REMOUNT | syscalls.MS_BIND | remount_with) == \
            syscalls.MS_REMOUNT | syscalls.MS_BIND | remount_with


def test_finalize_makes_paths_read_only_masks_others_and_the_root(recorded: RecordingSyscalls,
                                                                  tmp_path: Path) -> None:
    """Read-only paths: a recursive self-bind, then a read-only remount; masked paths: an empty read-only
    tmpfs over a directory, /dev/null over a file, nothing for a path that is not there; then the root."""
    for name in ("ro", "dir"):
        (tmp_path / name).mkdir()
    (tmp_path / "file").write_text("secret")
    ro, masked_dir, masked_file = str(tmp_path / "ro"), str(tmp_path / "dir"), str(tmp_path / "file")
    setup.finalize(_plan(tmp_path, readonly=True, readonly_paths=(ro,),
                         masked_paths=(masked_dir, masked_file, str(tmp_path / "missing"))))
    calls = recorded.of("mount")
    assert [c[:3] for c in calls] == [(ro, ro, None), (None, ro, None), ("tmpfs", masked_dir, "tmpfs"),
                                      ("/dev/null", masked_file, None), (None, "/", None)]
    assert calls[0][3] == syscalls.MS_BIND | syscalls.MS_REC
    remount = syscalls.MS_REMOUNT | syscalls.MS_BIND | syscalls.MS_RDONLY
    assert calls[1][3] & (remount | syscalls.MS_REC) == remount | syscalls.MS_REC
    assert (calls[2][3], calls[2][4]) == (syscalls.MS_RDONLY, "size=0k")
    assert calls[3][3] == syscalls.MS_BIND
    assert calls[4][3] & remount == remount


def test_a_read_only_path_the_rootfs_lacks_is_skipped(recorded: RecordingSyscalls, tmp_path: Path) -> None:
    recorded.fails["mount"] = SyscallError("mount", "/proc/nope", errno.ENOENT)
    setup.finalize(_plan(tmp_path, readonly_paths=("/proc/nope",)))
    assert recorded.names() == ["mount"]  # no remount follows the refused bind


def test_pivot_stacks_the_old_root_and_detaches_it(recorded: RecordingSyscalls, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """pivot_root(".", ".") puts the old root on top; it is made rslave, so its unmount stays in the
    container, and detached."""
    monkeypatch.chdir(tmp_path)  # pivot changes directory (for real); the test's is put back after
    setup.pivot(_plan(tmp_path))
    assert recorded.calls == [
        Call("pivot_root", (".", "."), {}),
        Call("mount", (None, ".", None, syscalls.MS_REC | syscalls.MS_SLAVE, None), {}),
        Call("umount2", (".", syscalls.MNT_DETACH), {}),
    ]


def test_sysfs_in_a_joined_network_namespace_is_a_sysfs_of_its_own(recorded: RecordingSyscalls,
                                                                     tmp_path: Path) -> None:
    """A container that joins a network namespace (kubelet's containers join the pod's) mounts
    a new sysfs rather than binding the host's /sys: a bind of a shared /sys is a peer of it,
    and what the container mounts on it (its /sys/fs/cgroup) would propagate to the host."""
    (pm,) = setup.plan_mounts((Mount("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),))
    setup._mount_one(0, pm, _plan(tmp_path, private_netns=False), {})
    (source, target, fstype, flags, _), = recorded.of("mount")
    assert (source, fstype, flags) == ("sysfs", "sysfs", pm.opts.flags)
    assert fd_path(target)
