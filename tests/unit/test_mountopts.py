"""OCI mount options -> mount(2) flags, propagation and mount_setattr attrs."""

from __future__ import annotations

from typing import Any

import pytest
from dockyard.runtime.kernel import syscalls
from dockyard.runtime.kernel.errors import InvalidSpec, Unsupported
from dockyard.runtime.kernel.lean.records import replace
from dockyard.runtime.rootfs.mountopts import SUPPORTED_OPTIONS, MountOptions, parse_mount_options

BASE = MountOptions(flags=0, clear=0, propagation=(), rec_attr_set=0, rec_attr_clr=0, data="",
                    idmap=False, recursive_idmap=False, is_bind=False, recursive_bind=False)
ATIME = syscalls.MOUNT_ATTR__ATIME


def check(options: list[str], **expected: Any) -> None:
    assert parse_mount_options(options, "mounts[0].options") == replace(BASE, **expected)


@pytest.mark.parametrize(("options", "expected"), [
    ([], {}),
    (["defaults"], {}),
    (["ro"], {"flags": syscalls.MS_RDONLY}),
    (["rw"], {"clear": syscalls.MS_RDONLY}),
    (["ro", "rw"], {"clear": syscalls.MS_RDONLY}),
    (["rw", "ro"], {"flags": syscalls.MS_RDONLY}),
    (["nosuid"], {"flags": syscalls.MS_NOSUID}),
    (["suid"], {"clear": syscalls.MS_NOSUID}),
    (["nodev"], {"flags": syscalls.MS_NODEV}),
    (["dev"], {"clear": syscalls.MS_NODEV}),
    (["noexec"], {"flags": syscalls.MS_NOEXEC}),
    (["exec"], {"clear": syscalls.MS_NOEXEC}),
    (["sync"], {"flags": syscalls.MS_SYNCHRONOUS}),
    (["async"], {"clear": syscalls.MS_SYNCHRONOUS}),
    (["dirsync"], {"flags": syscalls.MS_DIRSYNC}),
    (["remount"], {"flags": syscalls.MS_REMOUNT}),
    (["mand"], {"flags": syscalls.MS_MANDLOCK}),
    (["nomand"], {"clear": syscalls.MS_MANDLOCK}),
    (["noatime"], {"flags": syscalls.MS_NOATIME}),
    (["atime"], {"clear": syscalls.MS_NOATIME}),
    (["nodiratime"], {"flags": syscalls.MS_NODIRATIME}),
    (["diratime"], {"clear": syscalls.MS_NODIRATIME}),
    (["relatime"], {"flags": syscalls.MS_RELATIME}),
    (["norelatime"], {"clear": syscalls.MS_RELATIME}),
    (["strictatime"], {"flags": syscalls.MS_STRICTATIME}),
    (["nostrictatime"], {"clear": syscalls.MS_STRICTATIME}),
    (["nosymfollow"], {"flags": syscalls.MS_NOSYMFOLLOW}),
    (["symfollow"], {"clear": syscalls.MS_NOSYMFOLLOW}),
    (["lazytime"], {"flags": syscalls.MS_LAZYTIME}),
    (["nosuid", "noexec", "nodev", "ro"],
     {"flags": syscalls.MS_NOSUID | syscalls.MS_NOEXEC | syscalls.MS_NODEV | syscalls.MS_RDONLY}),
    (["bind"], {"flags": syscalls.MS_BIND, "is_bind": True}),
    (["rbind"], {"flags": syscalls.MS_BIND | syscalls.MS_REC, "is_bind": True, "recursive_bind": True}),
    (["bind", "rbind"], {"flags": syscalls.MS_BIND | syscalls.MS_REC, "is_bind": True, "recursive_bind": True}),
    (["rbind", "ro"], {"flags": syscalls.MS_BIND | syscalls.MS_REC | syscalls.MS_RDONLY, "is_bind": True,
                       "recursive_bind": True}),
    (["private"], {"propagation": (syscalls.MS_PRIVATE,)}),
    (["rprivate"], {"propagation": (syscalls.MS_REC | syscalls.MS_PRIVATE,)}),
    (["shared"], {"propagation": (syscalls.MS_SHARED,)}),
    (["rshared"], {"propagation": (syscalls.MS_REC | syscalls.MS_SHARED,)}),
    (["slave"], {"propagation": (syscalls.MS_SLAVE,)}),
    (["rslave"], {"propagation": (syscalls.MS_REC | syscalls.MS_SLAVE,)}),
    (["unbindable"], {"propagation": (syscalls.MS_UNBINDABLE,)}),
    (["runbindable"], {"propagation": (syscalls.MS_REC | syscalls.MS_UNBINDABLE,)}),
    (["rshared", "private"], {"propagation": (syscalls.MS_REC | syscalls.MS_SHARED, syscalls.MS_PRIVATE)}),
    (["rro"], {"rec_attr_set": syscalls.MOUNT_ATTR_RDONLY}),
    (["rrw"], {"rec_attr_clr": syscalls.MOUNT_ATTR_RDONLY}),
    (["rro", "rrw"], {"rec_attr_clr": syscalls.MOUNT_ATTR_RDONLY}),
    (["rnosuid"], {"rec_attr_set": syscalls.MOUNT_ATTR_NOSUID}),
    (["rsuid"], {"rec_attr_clr": syscalls.MOUNT_ATTR_NOSUID}),
    (["rnodev"], {"rec_attr_set": syscalls.MOUNT_ATTR_NODEV}),
    (["rdev"], {"rec_attr_clr": syscalls.MOUNT_ATTR_NODEV}),
    (["rnoexec"], {"rec_attr_set": syscalls.MOUNT_ATTR_NOEXEC}),
    (["rexec"], {"rec_attr_clr": syscalls.MOUNT_ATTR_NOEXEC}),
    (["rnodiratime"], {"rec_attr_set": syscalls.MOUNT_ATTR_NODIRATIME}),
    (["rdiratime"], {"rec_attr_clr": syscalls.MOUNT_ATTR_NODIRATIME}),
    (["rnosymfollow"], {"rec_attr_set": syscalls.MOUNT_ATTR_NOSYMFOLLOW}),
    (["rsymfollow"], {"rec_attr_clr": syscalls.MOUNT_ATTR_NOSYMFOLLOW}),
    # The atime field is replaced as a whole: clear all of it, set one value.
    (["rnoatime"], {"rec_attr_set": syscalls.MOUNT_ATTR_NOATIME, "rec_attr_clr": ATIME}),
    (["rstrictatime"], {"rec_attr_set": syscalls.MOUNT_ATTR_STRICTATIME, "rec_attr_clr": ATIME}),
    (["rrelatime"], {"rec_attr_set": syscalls.MOUNT_ATTR_RELATIME, "rec_attr_clr": ATIME}),
    (["ratime"], {"rec_attr_clr": ATIME}),
    (["rnorelatime"], {"rec_attr_clr": ATIME}),
    (["rnostrictatime"], {"rec_attr_clr": ATIME}),
    (["rnoatime", "rstrictatime"], {"rec_attr_set": syscalls.MOUNT_ATTR_STRICTATIME, "rec_attr_clr": ATIME}),
    (["rnoatime", "ratime"], {"rec_attr_clr": ATIME}),
    (["rro", "rnoatime"], {"rec_attr_set": syscalls.MOUNT_ATTR_RDONLY | syscalls.MOUNT_ATTR_NOATIME,
                           "rec_attr_clr": ATIME}),
    (["idmap"], {"idmap": True}),
    (["ridmap"], {"idmap": True, "recursive_idmap": True}),
    (["size=65536k", "mode=755"], {"data": "size=65536k,mode=755"}),
    (["nosuid", "newinstance", "ptmxmode=0666", "noexec", "mode=0620", "gid=5"],
     {"flags": syscalls.MS_NOSUID | syscalls.MS_NOEXEC, "data": "newinstance,ptmxmode=0666,mode=0620,gid=5"}),
])
def test_parse_mount_options(options: list[str], expected: dict[str, Any]) -> None:
    check(options, **expected)


def test_tmpcopyup_is_unsupported_naming_the_field() -> None:
    with pytest.raises(Unsupported) as info:
        parse_mount_options(["rw", "tmpcopyup"], "mounts[4].options")
    assert info.value.target == "mounts[4].options[1]"


@pytest.mark.parametrize("bad", ["", 7, None])
def test_bad_option_names_the_field(bad: object) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_mount_options(["ro", bad], "mounts[2].options")  # type: ignore[list-item]
    assert info.value.field == "mounts[2].options[1]"


def test_supported_options_sorted_and_parseable() -> None:
    assert list(SUPPORTED_OPTIONS) == sorted(set(SUPPORTED_OPTIONS))
    assert "tmpcopyup" not in SUPPORTED_OPTIONS
    for opt in SUPPORTED_OPTIONS:
        # None of them is passed to the filesystem as data.
        assert parse_mount_options([opt], "o").data == ""
