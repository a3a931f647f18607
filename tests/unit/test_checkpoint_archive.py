"""The container checkpoint archive (cri/checkpoint_archive.py): the layout CheckpointContainer
writes (CRI-O's), reading it back at restore, applying its file changes to a new writable layer,
and the spec a restored container runs with.  Archives and layers are made here in temp dirs;
whiteouts are real character devices 0:0 (mknod: root, as `make test` runs)."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest
from dockyard.cri import checkpoint_archive as ca
from dockyard.cri.errors import FailedPrecondition, InvalidArgument, NotFound
from dockyard.cri.snapshot.overlay import Mount

META = ca.CheckpointMeta(container_id="c" * 64, name="counter", image_ref="sha256:" + "a" * 64,
                         image_name="busybox", runtime="")


def needs_mknod() -> None:
    if os.geteuid() != 0:
        pytest.skip("overlay whiteouts are device nodes: mknod needs root")


def whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


@pytest.fixture
def dumped(tmp_path: Path) -> dict[str, Path]:
    """What a dump leaves: criu's images and log, the container's writable layer, its spec."""
    images = tmp_path / "scratch" / "checkpoint"
    images.mkdir(parents=True)
    (images / "inventory.img").write_bytes(b"\x01inv")
    (images / "pages-1.img").write_bytes(b"\x00" * 4096)
    work = tmp_path / "scratch" / "work"
    work.mkdir()
    (work / "dump.log").write_text("(00.01) Dumping finished successfully\n")
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "made").write_text("made\n")
    (upper / "etc" / "new.conf").write_text("x=1\n")
    (upper / "link").symlink_to("made")
    spec = tmp_path / "config.json"
    spec.write_text(json.dumps({"ociVersion": "1.0.2", "process": {"args": ["sh", "-c", "count"]}}))
    return {"images": images, "work": work, "upper": upper, "spec": spec}


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def read_member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def test_config_dump_round_trips() -> None:
    doc = ca.config_dump(META, 1_700_000_000_123_456_789, 1_700_000_100_000_000_000)
    assert doc["id"] == META.container_id and doc["rootfsImageRef"] == META.image_ref
    assert doc["rootfsImageName"] == doc["rootfsImage"] == "busybox"
    assert doc["createdTime"] == "2023-11-14T22:13:20.123457Z"
    assert doc["restored"] is False and doc["restoredTime"] == ca.ZERO_TIME
    assert ca.parse_config_dump(json.loads(json.dumps(doc)), "here") == META


@pytest.mark.parametrize("doc", [None, [], {"id": "x"}, {"rootfsImageRef": 5}])
def test_a_config_dump_naming_no_image_is_refused(doc: object) -> None:
    with pytest.raises(InvalidArgument, match=r"^config.image.image: config.dump names no image"):
        ca.parse_config_dump(doc, "config.image.image")


def test_write_archive_lays_out_what_cri_o_writes(dumped: dict[str, Path], tmp_path: Path) -> None:
    needs_mknod()
    whiteout(dumped["upper"] / "gone")
    whiteout(dumped["upper"] / "etc" / "hostname.old")
    location = tmp_path / "out" / "checkpoint.tar"  # its directory is made
    ca.write_archive(str(location), str(dumped["images"]), str(dumped["work"]), str(dumped["upper"]),
                     str(dumped["spec"]), ca.config_dump(META, 1, 2))
    found = members(location)
    assert set(found) == {"checkpoint", "checkpoint/inventory.img", "checkpoint/pages-1.img", "config.dump",
                          "spec.dump", "rootfs-diff.tar", "deleted.files", "dump.log"}
    assert json.loads(read_member(location, "config.dump"))["id"] == META.container_id
    assert json.loads(read_member(location, "spec.dump"))["process"]["args"] == ["sh", "-c", "count"]
    assert sorted(json.loads(read_member(location, "deleted.files"))) == ["/etc/hostname.old", "/gone"]
    with tarfile.open(fileobj=io.BytesIO(read_member(location, "rootfs-diff.tar"))) as diff:
        names = {m.name: m for m in diff.getmembers()}
    assert set(names) == {"etc", "etc/new.conf", "made", "link"}  # no whiteout in the diff
    assert names["link"].issym() and names["link"].linkname == "made"
    assert [p.name for p in location.parent.iterdir()] == ["checkpoint.tar"]  # no temp file beside it


def test_no_deleted_files_member_without_deletions(dumped: dict[str, Path], tmp_path: Path) -> None:
    location = tmp_path / "c.tar"
    ca.write_archive(str(location), str(dumped["images"]), str(dumped["work"]), str(dumped["upper"]),
                     str(dumped["spec"]), ca.config_dump(META, 1, 2))
    assert "deleted.files" not in members(location)


def test_a_failed_write_leaves_no_archive_and_no_temp_file(dumped: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FileNotFoundError):
        ca.write_archive(str(out / "c.tar"), str(dumped["images"]), str(dumped["work"]), str(dumped["upper"]),
                         str(tmp_path / "no-such-spec.json"), ca.config_dump(META, 1, 2))
    assert list(out.iterdir()) == []


def make_archive(path: Path, entries: dict[str, bytes | None]) -> Path:
    """A tar of ``entries`` (None: a directory)."""
    with tarfile.open(path, "w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


GOOD = {
    "checkpoint": None,
    "checkpoint/inventory.img": b"inv",
    "config.dump": json.dumps(ca.config_dump(META, 1, 2)).encode(),
    "spec.dump": json.dumps({"process": {"args": ["sh"]}, "mounts": []}).encode(),
}


def test_read_head(tmp_path: Path) -> None:
    head = ca.read_head(str(make_archive(tmp_path / "a.tar", GOOD)), "config.image.image")
    assert head.meta == META and head.spec["process"] == {"args": ["sh"]}


@pytest.mark.parametrize("entries, error, message", [
    ({k: v for k, v in GOOD.items() if k != "checkpoint/inventory.img"}, InvalidArgument,
     "is not a container checkpoint archive (no checkpoint/inventory.img)"),
    ({k: v for k, v in GOOD.items() if k != "spec.dump"}, InvalidArgument,
     "is not a container checkpoint archive (no spec.dump)"),
    ({**GOOD, "spec.dump": b"[1]"}, InvalidArgument, "spec.dump of"),
    ({**GOOD, "config.dump": b"{not json"}, InvalidArgument, "is not a container checkpoint archive"),
    ({**GOOD, "config.dump": b"{}"}, InvalidArgument, "config.dump names no image"),
])
def test_read_head_refuses_what_is_no_checkpoint(tmp_path: Path, entries: dict[str, bytes | None],
                                                 error: type[Exception], message: str) -> None:
    path = make_archive(tmp_path / "a.tar", entries)
    with pytest.raises(error) as info:
        ca.read_head(str(path), "config.image.image")
    assert str(info.value).startswith("config.image.image: ") and message in str(info.value), str(info.value)


def test_read_head_of_a_missing_file_or_not_a_tar(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="config.image.image: checkpoint archive /no/such.tar does not exist"):
        ca.read_head("/no/such.tar", "config.image.image")
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(InvalidArgument, match="is not a container checkpoint archive"):
        ca.read_head(str(junk), "config.image.image")
    with pytest.raises(InvalidArgument, match="is not a container checkpoint archive"):
        ca.read_head(str(tmp_path), "config.image.image")  # a directory


def test_unpack_applies_the_changes_and_skips_foreign_members(tmp_path: Path) -> None:
    needs_mknod()
    upper = tmp_path / "upper"
    upper.mkdir()
    archive = make_archive(tmp_path / "a.tar", {
        **GOOD,
        "rootfs-diff.tar": layer({"made": b"made\n", "etc/new.conf": b"x=1\n"}),
        "deleted.files": json.dumps(["/bin/nc", "/etc/motd"]).encode(),
        "bind.mounts": b"[]",  # CRI-O writes it; a restore here does not need it
        "network.status": b"{}",
    })
    dest = tmp_path / "bundle" / "checkpoint"
    images = ca.unpack(str(archive), str(dest), str(upper), "config.image.image")
    assert images == str(dest / "checkpoint") and (dest / "checkpoint" / "inventory.img").read_bytes() == b"inv"
    assert not (dest / "bind.mounts").exists() and not (dest / "network.status").exists()
    assert (upper / "made").read_text() == "made\n" and (upper / "etc" / "new.conf").read_text() == "x=1\n"
    for gone in (upper / "bin" / "nc", upper / "etc" / "motd"):
        st = gone.lstat()
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, gone  # overlay whiteouts


@pytest.mark.parametrize("extra, message", [
    ({"rootfs-diff.tar": layer({"../escape": b"x"})}, "config.image.image: "),
    ({"deleted.files": b'{"a": 1}'}, "deleted.files of"),
    ({"checkpoint/../../escape": b"x"}, "member 'checkpoint/../../escape' is not a relative path inside"),
])
def test_unpack_refuses_a_bad_archive(tmp_path: Path, extra: dict[str, bytes], message: str) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    archive = make_archive(tmp_path / "a.tar", {**GOOD, **extra})
    with pytest.raises(InvalidArgument, match=message.replace(".", r"\.")):
        ca.unpack(str(archive), str(tmp_path / "dest"), str(upper), "config.image.image")
    assert not (tmp_path / "escape").exists()


def test_unpack_refuses_links_and_twice_named_members(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    make_archive(archive, GOOD)
    with tarfile.open(archive, "a") as tar:
        link = tarfile.TarInfo("checkpoint/pages-1.img")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(link)
    with pytest.raises(InvalidArgument, match="member 'checkpoint/pages-1.img' is not a file or directory"):
        ca.unpack(str(archive), str(tmp_path / "d1"), "", "config.image.image")
    twice = tmp_path / "b.tar"
    make_archive(twice, GOOD)
    with tarfile.open(twice, "a") as tar:
        info = tarfile.TarInfo("checkpoint/inventory.img")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(InvalidArgument, match="member 'checkpoint/inventory.img' appears twice"):
        ca.unpack(str(twice), str(tmp_path / "d2"), "", "config.image.image")


def test_unpack_without_criu_images(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "a.tar", {k: v for k, v in GOOD.items() if k != "checkpoint/inventory.img"})
    with pytest.raises(InvalidArgument, match=r"holds no CRIU images \(checkpoint/inventory.img\)"):
        ca.unpack(str(archive), str(tmp_path / "dest"), "", "config.image.image")


def test_whiteout_tar_names() -> None:
    with tarfile.open(fileobj=io.BytesIO(ca.whiteout_tar(["/bin/nc", "/top", "a/b/c/"]))) as tar:
        assert tar.getnames() == ["bin/.wh.nc", ".wh.top", "a/b/.wh.c"]


@pytest.mark.parametrize("mounts, expected", [
    ([Mount("overlay", "overlay", ("index=off", "lowerdir=/l1:/l2", "upperdir=/s/7/fs", "workdir=/s/7/work"))],
     "/s/7/fs"),
    ([Mount("bind", "/s/8/fs", ("rbind", "rw"))], "/s/8/fs"),
    ([Mount("bind", "/s/9/fs", ("rbind", "ro"))], ""),
    ([], ""),
])
def test_writable_layer(mounts: list[Mount], expected: str) -> None:
    assert ca.writable_layer(mounts) == expected


def bind(dest: str, *options: str) -> dict[str, Any]:
    return {"destination": dest, "type": "bind", "source": "/h" + dest, "options": list(options) or ["rbind"]}


NEW = {
    "process": {"args": ["sh"], "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}, bind("/etc/hosts"),
               {"destination": "/dev/shm", "type": "none", "source": "/s/shm", "options": ["rbind", "rw"]}],
}


def test_restored_spec_takes_the_dumped_process_line() -> None:
    dumped = {"process": {"args": ["sh", "-c", "count"], "env": ["A=1"], "cwd": "/work", "user": {"uid": 7}},
              "mounts": [bind("/etc/hosts"), bind("/dev/shm")]}
    spec = ca.restored_spec(NEW, dumped, "config.image.image")
    assert spec["process"] == {"args": ["sh", "-c", "count"], "env": ["A=1"], "cwd": "/work", "user": {"uid": 0, "gid": 0}}
    assert spec["mounts"] == NEW["mounts"] and NEW["process"]["args"] == ["sh"]  # NEW itself untouched


def test_restored_spec_keeps_what_the_dump_does_not_say() -> None:
    assert ca.restored_spec(NEW, {}, "w")["process"] == NEW["process"]


@pytest.mark.parametrize("dumped, error, message", [
    ({"mounts": [bind("/etc/hosts"), bind("/data"), bind("/dev/termination-log")]}, FailedPrecondition,
     ("config.mounts: the checkpointed container had bind mounts at /data, /dev/termination-log; "
      "the restored one needs a mount at each")),
    ({"process": {"terminal": True}}, FailedPrecondition,
     "config.image.image: the checkpointed container had a terminal; it cannot be restored"),
])
def test_restored_spec_refuses(dumped: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        ca.restored_spec(NEW, dumped, "config.image.image")
    assert str(info.value) == message


def with_namespaces(spec: dict[str, Any], *entries: dict[str, str]) -> dict[str, Any]:
    return {**spec, "linux": {"namespaces": [{"type": "mount"}, *entries]}}


OWN_PID, POD_PID = {"type": "pid"}, {"type": "pid", "path": "/proc/9/ns/pid"}
POD_NET = {"type": "network", "path": "/run/netns/p"}


@pytest.mark.parametrize("dumped, new, message", [
    ([OWN_PID, POD_NET], [POD_PID, POD_NET], ("config.linux.security_context.namespace_options.pid: the "
     "checkpointed container's pid namespace was its own, the restored one's would be the pod's")),
    ([POD_PID, POD_NET], [OWN_PID, POD_NET], ("config.linux.security_context.namespace_options.pid: the "
     "checkpointed container's pid namespace was the pod's, the restored one's would be its own")),
    ([OWN_PID, POD_NET], [OWN_PID], ("sandbox_config.linux.security_context.namespace_options.network: the "
     "checkpointed container's network namespace was the pod's, the restored one's would be the host's")),
])
def test_restored_spec_needs_the_same_kind_of_namespaces(dumped: list[dict[str, str]], new: list[dict[str, str]],
                                                         message: str) -> None:
    with pytest.raises(FailedPrecondition) as info:
        ca.restored_spec(with_namespaces(NEW, *new), with_namespaces({}, *dumped), "config.image.image")
    assert str(info.value) == message


def test_restored_spec_namespaces_of_the_same_kind_pass() -> None:
    other_pod = {"type": "pid", "path": "/proc/77/ns/pid"}  # another pod's: the kind is what counts
    spec = ca.restored_spec(with_namespaces(NEW, other_pod, POD_NET), with_namespaces({}, POD_PID, POD_NET), "w")
    assert spec["linux"]["namespaces"][1] == other_pod
    ca.restored_spec(with_namespaces(NEW, OWN_PID), {"process": {}}, "w")  # a dump listing none: not compared


@pytest.mark.parametrize("image, expected", [
    ("/var/lib/kubelet/checkpoints/checkpoint-p_ns-c-2026.tar", True),
    ("busybox", False), ("127.0.0.1:5000/x:1", False), ("sha256:" + "a" * 64, False),
])
def test_names_archive(image: str, expected: bool) -> None:
    assert ca.names_archive(image) is expected
