"""The overlay snapshotter on the real kernel: committed layer chains, overlay and copied container views."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from dockyard.cri.errors import FailedPrecondition, NotFound, PullError
from dockyard.cri.snapshot.overlay import Mount, Snapshotter, chain_id

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
OCI = REPO / "build" / "oci"

TAR = "application/vnd.oci.image.layer.v1.tar"
TGZ = "application/vnd.oci.image.layer.v1.tar+gzip"
TZST = "application/vnd.oci.image.layer.v1.tar+zstd"


def mounted_under(path: Path) -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mountpoint = line.split()[4]
        if mountpoint.startswith(str(path)):
            out.append(mountpoint)
    return out


@pytest.fixture
def merged(tmp_path: Path) -> Iterator[Path]:
    """A mount point that is checked, and cleaned, for leftover mounts."""
    target = tmp_path / "merged"
    target.mkdir()
    yield target
    left = mounted_under(tmp_path)
    for m in reversed(left):
        os.system(f"umount -l {m}")
    assert not left, f"mounts left behind: {left}"


def tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            if ti.isreg():
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def info(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, **kw: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = 1_600_000_000
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def layer_files(tmp_path: Path) -> list[tuple[Path, str, str]]:
    """Three layers: base files, then whiteouts and an opaque dir, then an addition (tar, gzip, zstd)."""
    l1 = tar_bytes(
        [
            (info("etc", tarfile.DIRTYPE, 0o755), b""),
            (info("etc/motd"), b"hello\n"),
            (info("etc/keep"), b"kept\n"),
            (info("opt", tarfile.DIRTYPE, 0o755), b""),
            (info("opt/old1"), b"1"),
            (info("opt/old2"), b"2"),
            (info("bin", tarfile.DIRTYPE, 0o755), b""),
            (info("bin/su", mode=0o4755, uid=0, gid=0), b"su"),
            (info("data", tarfile.DIRTYPE, 0o755), b""),
            (info("data/a"), b"shared"),
            (info("data/b", tarfile.LNKTYPE, linkname="data/a"), b""),
            (info("motd-link", tarfile.SYMTYPE, linkname="/etc/motd"), b""),
            (info("attr", pax_headers={"SCHILY.xattr.user.k": "v"}), b"x"),
            (info("owned", uid=1234, gid=5678), b"o"),
        ]
    )
    l2 = tar_bytes(
        [
            (info("etc", tarfile.DIRTYPE, 0o755), b""),
            (info("etc/.wh.motd"), b""),
            (info("opt", tarfile.DIRTYPE, 0o755), b""),
            (info("opt/.wh..wh..opq"), b""),
            (info("opt/new"), b"new"),
        ]
    )
    l3 = tar_bytes([(info("top"), b"top layer")])
    out = []
    for i, (data, media_type, blob) in enumerate(
        [
            (l1, TAR, l1),
            (l2, TGZ, gzip.compress(l2)),
            (l3, TZST, zstandard.ZstdCompressor().compress(l3)),
        ]
    ):
        path = tmp_path / f"layer{i}"
        path.write_bytes(blob)
        out.append((path, media_type, "sha256:" + hashlib.sha256(data).hexdigest()))
    return out


def unpack_chain(snap: Snapshotter, layers: list[tuple[Path, str, str]]) -> str:
    parent: str | None = None
    for path, media_type, diff_id in layers:
        parent = snap.unpack(str(path), media_type, diff_id, parent)
    assert parent is not None
    return parent


def check_merged_view(root: Path) -> None:
    """The shared checker: what a container must see on top of the three test layers."""
    assert not os.path.lexists(root / "etc/motd"), "whiteout must hide etc/motd"
    assert (root / "etc/keep").read_bytes() == b"kept\n"
    assert sorted(os.listdir(root / "opt")) == ["new"], "opaque dir shows only the upper layer"
    st = os.lstat(root / "bin/su")
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert os.lstat(root / "data/a").st_nlink == 2
    assert os.path.samefile(root / "data/a", root / "data/b")
    assert os.readlink(root / "motd-link") == "/etc/motd"
    assert os.getxattr(root / "attr", "user.k") == b"v"
    st = os.lstat(root / "owned")
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert (root / "top").read_bytes() == b"top layer"


def test_multilayer_overlay_merged_view(tmp_path: Path, merged: Path) -> None:
    """Whiteouts hide, opaque dirs replace, and setuid, hardlinks, symlinks, xattrs and owners survive in the overlay."""
    snap = Snapshotter(str(tmp_path / "snap"))
    assert snap.overlay_supported()
    top = unpack_chain(snap, layer_files(tmp_path))
    mounts = snap.prepare("container-1", top)
    assert len(mounts) == 1 and mounts[0].type == "overlay"
    options = dict(o.split("=", 1) for o in mounts[0].options)
    assert len(options["lowerdir"].split(":")) == 3
    snap.mount(mounts, str(merged))
    try:
        check_merged_view(merged)
        (merged / "written").write_text("upper")
        os.unlink(merged / "etc/keep")
    finally:
        snap.unmount(str(merged))
    assert (Path(options["upperdir"]) / "written").read_text() == "upper"
    # Deleting a lower file in the container leaves a whiteout in the upper dir.
    assert stat.S_ISCHR(os.lstat(Path(options["upperdir"]) / "etc/keep").st_mode)
    assert (Path(snap.fs_dir(chain_id(None, layer_files(tmp_path)[0][2]))) / "etc/keep").exists()
    snap.remove("container-1")
    assert snap.active() == set()


def test_view_is_read_only(tmp_path: Path, merged: Path) -> None:
    """view() gives the same merged content, and writes fail with EROFS."""
    snap = Snapshotter(str(tmp_path / "snap"))
    top = unpack_chain(snap, layer_files(tmp_path))
    mounts = snap.view("view-1", top)
    assert all("upperdir" not in o for o in mounts[0].options)
    snap.mount(mounts, str(merged))
    try:
        check_merged_view(merged)
        with pytest.raises(OSError) as err:
            (merged / "nope").write_text("x")
        assert err.value.errno == errno.EROFS
    finally:
        snap.unmount(str(merged))
    snap.remove("view-1")


def test_copying_fallback_gives_the_same_view(tmp_path: Path, merged: Path) -> None:
    """Without overlayfs, prepare() copies the chain into a plain dir that shows the same merged content."""
    snap = Snapshotter(str(tmp_path / "snap"), use_overlay=False)
    top = unpack_chain(snap, layer_files(tmp_path))
    mounts = snap.prepare("c", top)
    assert mounts == [Mount("bind", mounts[0].source, ("rbind", "rw"))]
    snap.mount(mounts, str(merged))
    try:
        check_merged_view(merged)
    finally:
        snap.unmount(str(merged))
    snap.remove("c")


def busybox_layer() -> tuple[Path, str, str]:
    index = json.loads((OCI / "index.json").read_text())
    manifest_desc = next(
        m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "busybox"
    )
    blob = lambda d: OCI / "blobs" / "sha256" / d.split(":", 1)[1]  # noqa: E731
    manifest = json.loads(blob(manifest_desc["digest"]).read_text())
    config = json.loads(blob(manifest["config"]["digest"]).read_text())
    layer = manifest["layers"][0]
    return blob(layer["digest"]), layer["mediaType"], config["rootfs"]["diff_ids"][0]


@pytest.mark.skipif(not (OCI / "index.json").exists(), reason="build/oci is made by hack/build-images.sh (make images)")
def test_busybox_layer_unpacks_and_mounts(tmp_path: Path, merged: Path) -> None:
    """The busybox image's layer unpacks to its config's diff id and runs as a single-layer container rootfs."""
    path, media_type, diff_id = busybox_layer()
    snap = Snapshotter(str(tmp_path / "snap"))
    chain = snap.unpack(str(path), media_type, diff_id, None)
    assert chain == diff_id
    mounts = snap.prepare("bb", chain)
    snap.mount(mounts, str(merged))
    try:
        st = os.lstat(merged / "bin/busybox")
        assert stat.S_ISREG(st.st_mode) and st.st_mode & 0o111
        sh = merged / "bin/sh"
        assert os.path.lexists(sh)
        (merged / "tmp-file").write_text("x")
    finally:
        snap.unmount(str(merged))
    snap.remove("bb")
    used, inodes = snap.usage()
    assert used > 500_000 and inodes > 100


def test_concurrent_identical_unpacks_share_one_snapshot(tmp_path: Path) -> None:
    """Several threads unpacking the same layer get the same chain id and one committed snapshot."""
    snap = Snapshotter(str(tmp_path / "snap"))
    path, media_type, diff_id = layer_files(tmp_path)[0]
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(snap.unpack(str(path), media_type, diff_id, None)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [diff_id] * 4
    assert snap.committed() == {diff_id}
    assert sorted(os.listdir(tmp_path / "snap" / "snapshots")) == ["1"]


def test_one_thread_stages_a_chain_twice_without_touching_the_first(tmp_path: Path) -> None:
    """Two pulls that share a layer may stage its chain at once, even on the
    same worker thread: each stage gets a dir of its own, the second does not
    remove the first's, and whichever commits first wins while the other is
    dropped (the race a loaded image-GC test once hit)."""
    snap = Snapshotter(str(tmp_path / "snap"))
    path, media_type, diff_id = layer_files(tmp_path)[0]
    first = snap.stage(str(path), media_type, diff_id, diff_id)
    second = snap.stage(str(path), media_type, diff_id, diff_id)
    assert first is not None and second is not None
    assert first.temp != second.temp
    assert os.path.isdir(os.path.join(first.temp, "fs")) and os.path.isdir(os.path.join(second.temp, "fs"))
    assert snap.commit_staged(first, None) == diff_id
    assert snap.commit_staged(second, None) == diff_id  # committed meanwhile: its copy is dropped
    assert snap.committed() == {diff_id}
    assert sorted(os.listdir(tmp_path / "snap" / "snapshots")) == ["1"]


def test_diff_id_mismatch_commits_nothing(tmp_path: Path) -> None:
    """A layer whose uncompressed digest differs from the config's diff id is refused and leaves no dir."""
    snap = Snapshotter(str(tmp_path / "snap"))
    path, media_type, _ = layer_files(tmp_path)[0]
    with pytest.raises(PullError) as err:
        snap.unpack(str(path), media_type, "sha256:" + "0" * 64, None)
    assert err.value.reason == "digest_mismatch"
    assert snap.committed() == set()
    assert os.listdir(tmp_path / "snap" / "snapshots") == []


def test_layers_staged_out_of_order_commit_in_order(tmp_path: Path, merged: Path) -> None:
    """A pull stages layers as their blobs arrive, top layer first here, and
    commits them bottom up: the merged view is the same as unpacking in
    order; a layer cannot be committed before its parent, and a discarded
    staging leaves nothing."""
    snap = Snapshotter(str(tmp_path / "snap"))
    layers = layer_files(tmp_path)
    chains: list[str] = []
    parent: str | None = None
    for _, _, diff_id in layers:
        parent = snap.chain_of(parent, diff_id)
        chains.append(parent)
    staged = {i: snap.stage(str(path), media_type, diff_id, chains[i])
              for i, (path, media_type, diff_id) in reversed(list(enumerate(layers)))}
    with pytest.raises(NotFound):
        snap.commit_staged(staged[2], chains[1])  # its parent is not committed yet
    staged[2] = snap.stage(str(layers[2][0]), layers[2][1], layers[2][2], chains[2])  # the failure discarded it
    for i in range(3):
        assert snap.commit_staged(staged[i], chains[i - 1] if i else None) == chains[i]
    assert snap.stage(str(layers[0][0]), layers[0][1], layers[0][2], chains[0]) is None  # committed already
    extra = snap.stage(str(layers[0][0]), layers[0][1], layers[0][2], "sha256:" + "1" * 64)
    snap.discard(extra)
    assert sorted(os.listdir(tmp_path / "snap" / "snapshots")) == ["1", "2", "3"]
    snap.mount(snap.view("v", chains[-1]), str(merged))
    try:
        check_merged_view(merged)
    finally:
        snap.unmount(str(merged))
        snap.remove("v")


def test_restart_keeps_committed_and_cleans_leftovers(tmp_path: Path) -> None:
    """After a crash, committed snapshots reload from metadata and half-made dirs are removed at startup."""
    root = tmp_path / "snap"
    snap = Snapshotter(str(root))
    top = unpack_chain(snap, layer_files(tmp_path))
    snap.prepare("active", top)
    # What a kill -9 mid-unpack or between rename and metadata write leaves behind:
    (root / "snapshots" / ".tmp-123-456-abc" / "fs").mkdir(parents=True)
    (root / "snapshots" / "99" / "fs").mkdir(parents=True)
    (root / ".tmp-metadata.json-deadbeef").write_text("{")
    again = Snapshotter(str(root))
    assert again.clean_temporary() == 3
    assert again.committed() == snap.committed() and len(again.committed()) == 3
    assert again.active() == {"active"}
    assert again.mounts("active") == snap.mounts("active")
    assert sorted(os.listdir(root / "snapshots")) == ["1", "2", "3", "4"]
    again.remove("active")


def test_remove_committed_takes_descendants_and_respects_containers(tmp_path: Path) -> None:
    """Removing a chain removes the chains built on it, is idempotent, and is refused while a container uses it."""
    snap = Snapshotter(str(tmp_path / "snap"))
    layers = layer_files(tmp_path)
    top = unpack_chain(snap, layers)
    base = layers[0][2]
    snap.prepare("user", top)
    with pytest.raises(FailedPrecondition, match="user"):
        snap.remove_committed(base)
    snap.remove("user")
    snap.remove_committed(base)
    snap.remove_committed(top)  # already gone with its parent: fine
    assert snap.committed() == set()
    assert os.listdir(tmp_path / "snap" / "snapshots") == []


def test_concurrent_prepares_are_each_durable_when_they_return(tmp_path: Path) -> None:
    """Group commit of the metadata: whatever thread wrote it, every prepare
    and remove that returned is in metadata.json (a fresh Snapshotter, as
    after a crash, sees exactly those)."""
    root = tmp_path / "snap"
    snap = Snapshotter(str(root))
    top = unpack_chain(snap, layer_files(tmp_path))
    keys = [f"c{i}" for i in range(24)]
    errors: list[BaseException] = []

    def work(key: str) -> None:
        try:
            snap.prepare(key, top)
            if key.endswith(("1", "3")):
                snap.remove(key)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    kept = {k for k in keys if not k.endswith(("1", "3"))}
    assert snap.active() == kept
    assert Snapshotter(str(root)).active() == kept
    for k in kept:
        snap.remove(k)
    assert Snapshotter(str(root)).active() == set()
