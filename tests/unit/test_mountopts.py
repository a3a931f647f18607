"""OCI mount options -> mount(2) flags, propagation and mount_setattr attrs."""

from __future__ import annotations

from dockyard.runtime.kernel.lean.records import replace
from typing import Any

import pytest

from dockyard.runtime.kernel import syscalls as sc
from dockyard.runtime.kernel.errors import InvalidSpec, Unsupported
from dockyard.runtime.rootfs.mountopts import SUPPORTED_OPTIONS, MountOptions, parse_mount_options

BASE = MountOptions(flags=0, clear=0, propagation=(), rec_attr_set=0, rec_attr_clr=0, data="",
                    idmap=False, recursive_idmap=False, is_bind=False, recursive_bind=False)
ATIME = sc.MOUNT_ATTR__ATIME


def check(options: list[str], **expected: Any) -> None:
    assert parse_mount_options(options, "mounts[0].options") == replace(BASE, **expected)


@pytest.mark.parametrize(("options", "expected"), [
    ([], {}),
    (["defaults"], {}),
    (["ro"], {"flags": sc.MS_RDONLY}),
    (["rw"], {"clear": sc.MS_RDONLY}),
    (["ro", "rw"], {"clear": sc.MS_RDONLY}),
    (["rw", "ro"], {"flags": sc.MS_RDONLY}),
    (["nosuid"], {"flags": sc.MS_NOSUID}),
    (["suid"], {"clear": sc.MS_NOSUID}),
    (["nodev"], {"flags": sc.MS_NODEV}),
    (["dev"], {"clear": sc.MS_NODEV}),
    (["noexec"], {"flags": sc.MS_NOEXEC}),
    (["exec"], {"clear": sc.MS_NOEXEC}),
    (["sync"], {"flags": sc.MS_SYNCHRONOUS}),
    (["async"], {"clear": sc.MS_SYNCHRONOUS}),
    (["dirsync"], {"flags": sc.MS_DIRSYNC}),
    (["remount"], {"flags": sc.MS_REMOUNT}),
    (["mand"], {"flags": sc.MS_MANDLOCK}),
    (["nomand"], {"clear": sc.MS_MANDLOCK}),
    (["noatime"], {"flags": sc.MS_NOATIME}),
    (["atime"], {"clear": sc.MS_NOATIME}),
    (["nodiratime"], {"flags": sc.MS_NODIRATIME}),
    (["diratime"], {"clear": sc.MS_NODIRATIME}),
    (["relatime"], {"flags": sc.MS_RELATIME}),
    (["norelatime"], {"clear": sc.MS_RELATIME}),
    (["strictatime"], {"flags": sc.MS_STRICTATIME}),
    (["nostrictatime"], {"clear": sc.MS_STRICTATIME}),
    (["nosymfollow"], {"flags": sc.MS_NOSYMFOLLOW}),
    (["symfollow"], {"clear": sc.MS_NOSYMFOLLOW}),
    (["lazytime"], {"flags": sc.MS_LAZYTIME}),
    (["nosuid", "noexec", "nodev", "ro"],
     {"flags": sc.MS_NOSUID | sc.MS_NOEXEC | sc.MS_NODEV | sc.MS_RDONLY}),
    (["bind"], {"flags": sc.MS_BIND, "is_bind": True}),
    (["rbind"], {"flags": sc.MS_BIND | sc.MS_REC, "is_bind": True, "recursive_bind": True}),
    (["bind", "rbind"], {"flags": sc.MS_BIND | sc.MS_REC, "is_bind": True, "recursive_bind": True}),
    (["rbind", "ro"], {"flags": sc.MS_BIND | sc.MS_REC | sc.MS_RDONLY, "is_bind": True,
                       "recursive_bind": True}),
    (["private"], {"propagation": (sc.MS_PRIVATE,)}),
    (["rprivate"], {"propagation": (sc.MS_REC | sc.MS_PRIVATE,)}),
    (["shared"], {"propagation": (sc.MS_SHARED,)}),
    (["rshared"], {"propagation": (sc.MS_REC | sc.MS_SHARED,)}),
    (["slave"], {"propagation": (sc.MS_SLAVE,)}),
    (["rslave"], {"propagation": (sc.MS_REC | sc.MS_SLAVE,)}),
    (["unbindable"], {"propagation": (sc.MS_UNBINDABLE,)}),
    (["runbindable"], {"propagation": (sc.MS_REC | sc.MS_UNBINDABLE,)}),
    (["rshared", "private"], {"propagation": (sc.MS_REC | sc.MS_SHARED, sc.MS_PRIVATE)}),
    (["rro"], {"rec_attr_set": sc.MOUNT_ATTR_RDONLY}),
    (["rrw"], {"rec_attr_clr": sc.MOUNT_ATTR_RDONLY}),
    (["rro", "rrw"], {"rec_attr_clr": sc.MOUNT_ATTR_RDONLY}),
    (["rnosuid"], {"rec_attr_set": sc.MOUNT_ATTR_NOSUID}),
    (["rsuid"], {"rec_attr_clr": sc.MOUNT_ATTR_NOSUID}),
    (["rnodev"], {"rec_attr_set": sc.MOUNT_ATTR_NODEV}),
    (["rdev"], {"rec_attr_clr": sc.MOUNT_ATTR_NODEV}),
    (["rnoexec"], {"rec_attr_set": sc.MOUNT_ATTR_NOEXEC}),
    (["rexec"], {"rec_attr_clr": sc.MOUNT_ATTR_NOEXEC}),
    (["rnodiratime"], {"rec_attr_set": sc.MOUNT_ATTR_NODIRATIME}),
    (["rdiratime"], {"rec_attr_clr": sc.MOUNT_ATTR_NODIRATIME}),
    (["rnosymfollow"], {"rec_attr_set": sc.MOUNT_ATTR_NOSYMFOLLOW}),
    (["rsymfollow"], {"rec_attr_clr": sc.MOUNT_ATTR_NOSYMFOLLOW}),
    # The atime field is replaced as a whole: clear all of it, set one value.
    (["rnoatime"], {"rec_attr_set": sc.MOUNT_ATTR_NOATIME, "rec_attr_clr": ATIME}),
    (["rstrictatime"], {"rec_attr_set": sc.MOUNT_ATTR_STRICTATIME, "rec_attr_clr": ATIME}),
    (["rrelatime"], {"rec_attr_set": sc.MOUNT_ATTR_RELATIME, "rec_attr_clr": ATIME}),
    (["ratime"], {"rec_attr_clr": ATIME}),
    (["rnorelatime"], {"rec_attr_clr": ATIME}),
    (["rnostrictatime"], {"rec_attr_clr": ATIME}),
    (["rnoatime", "rstrictatime"], {"rec_attr_set": sc.MOUNT_ATTR_STRICTATIME, "rec_attr_clr": ATIME}),
    (["rnoatime", "ratime"], {"rec_attr_clr": ATIME}),
    (["rro", "rnoatime"], {"rec_attr_set": sc.MOUNT_ATTR_RDONLY | sc.MOUNT_ATTR_NOATIME,
                           "rec_attr_clr": ATIME}),
    (["idmap"], {"idmap": True}),
    (["ridmap"], {"idmap": True, "recursive_idmap": True}),
    (["size=65536k", "mode=755"], {"data": "size=65536k,mode=755"}),
    (["nosuid", "newinstance", "ptmxmode=0666", "noexec", "mode=0620", "gid=5"],
     {"flags": sc.MS_NOSUID | sc.MS_NOEXEC, "data": "newinstance,ptmxmode=0666,mode=0620,gid=5"}),
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
