"""Image volumes, without a kernel: the sub path rule, the OCI mount an image volume becomes, and
mounting/releasing views through a recording fake snapshotter (the rollback of a half-done create
leaves no view behind)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cri_api.v1 import api_pb2

from dockyard.cri import errors
from dockyard.cri.image_mounts import ImageMount, check_sub_path, mount_all, owner_key, release, snapshot_key
from dockyard.cri.oci.mounts import cri_mount


@pytest.mark.parametrize(("sub_path", "expected"), [
    ("", ""), ("bin", "bin"), ("usr/share/", "usr/share"), ("./etc//x", "etc/x"),
    ("/etc", None), ("../x", None), ("a/../../b", None), ("a\0b", None),
])
def test_sub_path(sub_path: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(errors.InvalidArgument, match=r"^config.mounts\[2\].image_sub_path"):
            check_sub_path(sub_path, "config.mounts[2]")
    else:
        assert check_sub_path(sub_path, "config.mounts[2]") == expected


def image_mount(**kw: Any) -> api_pb2.Mount:
    return api_pb2.Mount(container_path="/data", image=api_pb2.ImageSpec(image="sha256:" + "a" * 64), **kw)


def test_an_image_volume_is_a_read_only_bind_of_where_the_image_is_mounted() -> None:
    """Read-only whatever readonly says (and rro when asked), private; never a host path."""
    never = lambda _path: pytest.fail("an image volume has no host path to check")  # noqa: E731
    assert cri_mount(image_mount(), "config.mounts[0]", never, "/b/image-mounts/0") == {
        "destination": "/data", "type": "bind", "source": "/b/image-mounts/0", "options": ["rbind", "rprivate", "ro"]}
    assert cri_mount(image_mount(readonly=True, recursive_read_only=True), "m", never, "/s")["options"][-1] == "rro"
    with pytest.raises(errors.InvalidArgument, match=r"^config.mounts\[0\].host_path: an image volume takes no host path"):
        cri_mount(image_mount(host_path="/etc"), "config.mounts[0]", never, "/s")
    with pytest.raises(errors.InvalidArgument, match=r"^config.mounts\[0\].image: the image .* is not mounted"):
        cri_mount(image_mount(), "config.mounts[0]", never, None)
    with pytest.raises(errors.InvalidArgument, match=r"^config.mounts\[0\].container_path"):
        cri_mount(api_pb2.Mount(image=api_pb2.ImageSpec(image="x")), "config.mounts[0]", never, "/s")


def test_keys() -> None:
    assert snapshot_key("c1", 3) == "c1/image-mount/3"
    assert owner_key(snapshot_key("c1", 3)) == "c1" and owner_key("c1") == "c1"


class FakeSnapshotter:
    """Views are recorded; mounting one writes the image's files (a dir, a file, an escaping link)."""

    def __init__(self, fail_view: str = "") -> None:
        self.views: dict[str, str | None] = {}
        self.fail_view = fail_view

    def view(self, key: str, parent_chain_id: str | None) -> list[Any]:
        if key == self.fail_view:
            raise errors.Internal(f"view {key}: no space left")
        self.views[key] = parent_chain_id
        return [key]

    def remove(self, key: str) -> None:
        if key not in self.views:
            raise errors.NotFound(key)
        del self.views[key]

    def active(self) -> set[str]:
        return set(self.views) | {"c1", "other/image-mount/0"}

    @staticmethod
    def mount(mounts: list[Any], target: str) -> None:
        os.makedirs(os.path.join(target, "usr", "share"))
        Path(target, "usr", "share", "motd").write_text("from the image\n")
        os.symlink("/usr/share", os.path.join(target, "share"))


def test_mount_and_release(tmp_path: Path) -> None:
    """Each volume's view is mounted under the bundle; a sub path resolves inside the image (its
    absolute symlink too); release unmounts them all and removes exactly this container's views."""
    snap, unmounted = FakeSnapshotter(), []
    wanted = [ImageMount(1, "sha256:c", "", "config.mounts[1]"), ImageMount(4, None, "share", "config.mounts[4]")]
    sources = mount_all(snap, wanted, str(tmp_path), "c1", unmounted.append)
    assert sources == {1: str(tmp_path / "image-mounts" / "1"), 4: str(tmp_path / "image-mounts" / "4" / "usr" / "share")}
    assert snap.views == {"c1/image-mount/1": "sha256:c", "c1/image-mount/4": None}
    release(snap, str(tmp_path), "c1", unmounted.append)
    assert unmounted == [str(tmp_path / "image-mounts" / "1"), str(tmp_path / "image-mounts" / "4")]
    assert snap.views == {}
    release(snap, str(tmp_path / "gone"), "c1", unmounted.append)  # idempotent


@pytest.mark.parametrize(("fail_view", "sub_path", "error"), [
    ("c1/image-mount/2", "", errors.Internal),
    ("", "usr/missing", errors.InvalidArgument),
])
def test_a_failed_volume_undoes_the_others(tmp_path: Path, fail_view: str, sub_path: str,
                                           error: type[Exception]) -> None:
    snap, unmounted = FakeSnapshotter(fail_view), []
    wanted = [ImageMount(0, "sha256:c", "", "config.mounts[0]"), ImageMount(2, "sha256:d", sub_path, "config.mounts[2]")]
    with pytest.raises(error) as info:
        mount_all(snap, wanted, str(tmp_path), "c1", unmounted.append)
    if sub_path:
        assert str(info.value) == "config.mounts[2].image_sub_path: 'usr/missing' does not exist in the image"
    assert snap.views == {}
    assert str(tmp_path / "image-mounts" / "0") in unmounted


def test_idmapped_overlay_helpers() -> None:
    """The overlay's lower dirs and upper dir from its options; container root's host ids from OCI maps."""
    from dockyard.cri.snapshot.idmapped import overlay_options, root_host_ids, upper_dir

    options = ("workdir=/s/2/work", "upperdir=/s/2/fs", "lowerdir=/s/1/fs:/s/0/fs")
    assert overlay_options(options) == (["/s/1/fs", "/s/0/fs"], ["workdir=/s/2/work", "upperdir=/s/2/fs"])
    assert upper_dir(options) == "/s/2/fs" and upper_dir(("lowerdir=/a:/b",)) == ""
    maps = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert root_host_ids(maps, maps) == (100000, 100000)
    assert root_host_ids([{"containerID": 1, "hostID": 5, "size": 9}], maps) is None
