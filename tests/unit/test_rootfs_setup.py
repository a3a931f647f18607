"""Pure parts of runtime/rootfs/setup.py."""

from __future__ import annotations

import pytest

from dockyard.runtime.rootfs.setup import mount_point_of

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
