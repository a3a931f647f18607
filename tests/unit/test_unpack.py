"""apply_layer: layer tars are unpacked faithfully, with overlay whiteouts, and never outside the destination.

Tars are built in memory with the stdlib tarfile writer; the parser under
test (tar_stream) is our own.  Tests that need root (mknod, chown,
trusted.* xattrs) skip when not root, saying so.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zstandard

from dockyard.cri.errors import CriError, PullError
from dockyard.cri.snapshot import tar_stream
from dockyard.cri.snapshot.unpack import CHUNK, apply_layer, choose_compression, decompressed, sniff_compression

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="mknod, chown and trusted.* xattrs need root")

TAR = "application/vnd.oci.image.layer.v1.tar"
TGZ = "application/vnd.oci.image.layer.v1.tar+gzip"
TZST = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_TGZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MTIME = 1_600_000_000


@dataclass
class E:
    """One tar entry to build."""

    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    mode: int = 0o644
    linkname: str = ""
    uid: int = 0
    gid: int = 0
    mtime: float = MTIME
    devmajor: int = 0
    devminor: int = 0
    pax: dict[str, str] = field(default_factory=dict)


def build(entries: Iterable[E], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.type = e.type
            ti.mode = e.mode
            ti.uid, ti.gid = e.uid, e.gid
            ti.mtime = e.mtime
            ti.linkname = e.linkname
            ti.devmajor, ti.devminor = e.devmajor, e.devminor
            ti.pax_headers = dict(e.pax)
            if e.type == tarfile.REGTYPE:
                ti.size = len(e.data)
                tf.addfile(ti, io.BytesIO(e.data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def apply(data: bytes, dest: Path, media_type: str = TAR, layer: str = "sha256:layer") -> str:
    return apply_layer(io.BytesIO(data), str(dest), media_type, layer=layer)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "dest"
    d.mkdir()
    return d


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to dest that no layer may touch."""
    o = tmp_path / "outside"
    o.mkdir()
    (o / "secret").write_bytes(b"untouched")
    return o


def tree(path: Path) -> dict[str, tuple[int, bytes | str]]:
    """A comparable picture of a directory tree (mode and content or link target)."""
    out: dict[str, tuple[int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                content: bytes | str = Path(p).read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(p)
            else:
                content = b""
            out[os.path.relpath(p, path)] = (st.st_mode, content)
    return out


# --- faithful unpacking ------------------------------------------------------------


def test_regular_files_dirs_and_digest(dest: Path) -> None:
    """Files get their content, mode and mtime; dirs their mode and mtime (set after contents); the diff id is the tar's sha256."""
    data = build(
        [
            E("etc", tarfile.DIRTYPE, mode=0o755, mtime=1000),
            E("etc/hostname", data=b"box\n", mode=0o600, mtime=2000),
            E("etc/big", data=os.urandom(3 << 20), mode=0o644),
            E("bin/", tarfile.DIRTYPE, mode=0o711, mtime=3000),
            E("bin/tool", data=b"#!/bin/sh\n", mode=0o755),
            E("tmp", tarfile.DIRTYPE, mode=0o1777),
            E("./empty", data=b""),
        ]
    )
    assert apply(data, dest) == sha(data)
    assert (dest / "etc/hostname").read_bytes() == b"box\n"
    assert len((dest / "etc/big").read_bytes()) == 3 << 20
    assert stat.S_IMODE(os.lstat(dest / "etc/hostname").st_mode) == 0o600
    assert stat.S_IMODE(os.lstat(dest / "bin").st_mode) == 0o711
    assert stat.S_IMODE(os.lstat(dest / "tmp").st_mode) == 0o1777
    assert os.lstat(dest / "etc").st_mtime == 1000
    assert os.lstat(dest / "etc/hostname").st_mtime == 2000
    assert os.lstat(dest / "bin").st_mtime == 3000
    assert (dest / "empty").read_bytes() == b""


@pytest.mark.parametrize(
    "media_type, compress",
    [
        (TAR, lambda b: b),
        (TGZ, lambda b: gzip.compress(b, 1)),
        (DOCKER_TGZ, lambda b: gzip.compress(b[:5000], 1) + gzip.compress(b[5000:], 1)),
        (TZST, lambda b: zstandard.ZstdCompressor().compress(b)),
        (TZST, lambda b: zstandard.ZstdCompressor().compress(b[:7000]) + zstandard.ZstdCompressor().compress(b[7000:])),
    ],
    ids=["tar", "gzip", "gzip-multimember", "zstd", "zstd-multiframe"],
)
def test_compressions_give_the_uncompressed_digest(dest: Path, media_type: str, compress: object) -> None:
    """Every compression unpacks the same files and returns the digest of the uncompressed tar."""
    data = build([E("a", data=b"x" * 10000), E("d", tarfile.DIRTYPE), E("d/b", data=os.urandom(20000))])
    blob = compress(data)  # type: ignore[operator]
    assert apply(blob, dest, media_type) == sha(data)
    assert (dest / "a").read_bytes() == b"x" * 10000
    assert len((dest / "d/b").read_bytes()) == 20000


def test_digest_covers_bytes_after_end_of_archive(dest: Path) -> None:
    """The diff id is over the whole uncompressed stream, including padding after the end marker."""
    data = build([E("a", data=b"1")]) + bytes(4096)
    assert apply(gzip.compress(data), dest, TGZ) == sha(data)


def test_symlinks_hardlinks_fifo(dest: Path) -> None:
    """Symlinks keep their target verbatim (even absolute or dangling); hardlinks share the inode; fifos are fifos."""
    data = build(
        [
            E("bin", tarfile.DIRTYPE, mode=0o755),
            E("bin/busybox", data=b"ELF", mode=0o755),
            E("bin/sh", tarfile.LNKTYPE, linkname="bin/busybox"),
            E("bin/ls", tarfile.LNKTYPE, linkname="/bin/busybox"),
            E("abs", tarfile.SYMTYPE, linkname="/etc/passwd"),
            E("rel", tarfile.SYMTYPE, linkname="../../../../etc/shadow"),
            E("fifo", tarfile.FIFOTYPE, mode=0o640),
        ]
    )
    apply(data, dest)
    assert os.lstat(dest / "bin/busybox").st_nlink == 3
    assert os.path.samefile(dest / "bin/sh", dest / "bin/busybox")
    assert os.readlink(dest / "abs") == "/etc/passwd"
    assert os.readlink(dest / "rel") == "../../../../etc/shadow"
    st = os.lstat(dest / "fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640


def test_user_xattrs_and_long_names(dest: Path) -> None:
    """PAX SCHILY.xattr records become xattrs; long names (PAX and GNU) are kept whole."""
    long_dir = "d" * 120
    data = build(
        [
            E("f", data=b"1", pax={"SCHILY.xattr.user.note": "hello"}),
            E(f"{long_dir}/{'n' * 150}", data=b"2"),
        ]
    )
    apply(data, dest)
    assert os.getxattr(dest / "f", "user.note") == b"hello"
    assert (dest / long_dir / ("n" * 150)).read_bytes() == b"2"
    gnu = build([E(f"{'g' * 200}", data=b"3"), E("lnk", tarfile.SYMTYPE, linkname="t" * 150)], tarfile.GNU_FORMAT)
    apply(gnu, dest)
    assert (dest / ("g" * 200)).read_bytes() == b"3"
    assert os.readlink(dest / "lnk") == "t" * 150


def test_later_entries_replace_earlier(dest: Path) -> None:
    """A later member replaces an earlier one of any type (file over dir, dir over file, symlink over file)."""
    data = build(
        [
            E("x", tarfile.DIRTYPE),
            E("x/inner", data=b"gone"),
            E("x", data=b"now a file"),
            E("y", data=b"file"),
            E("y", tarfile.DIRTYPE, mode=0o700),
            E("z", data=b"file"),
            E("z", tarfile.SYMTYPE, linkname="y"),
        ]
    )
    apply(data, dest)
    assert (dest / "x").read_bytes() == b"now a file"
    assert (dest / "y").is_dir() and not (dest / "y").is_symlink()
    assert os.readlink(dest / "z") == "y"


def test_missing_parents_are_created(dest: Path) -> None:
    """A member whose parent directories have no entries gets them created (0755)."""
    apply(build([E("a/b/c/file", data=b"deep")]), dest)
    assert (dest / "a/b/c/file").read_bytes() == b"deep"
    assert stat.S_IMODE(os.lstat(dest / "a/b").st_mode) == 0o755


@needs_root
def test_ownership_setuid_devices_trusted_xattr(dest: Path) -> None:
    """uid/gid are applied before the mode, so setuid/setgid survive; devices are made; trusted.* xattrs kept."""
    data = build(
        [
            E("su", data=b"x", mode=0o4755, uid=1000, gid=1001),
            E("sg", tarfile.DIRTYPE, mode=0o2775, uid=7, gid=8),
            E("null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
            E("loop", tarfile.BLKTYPE, mode=0o660, devmajor=7, devminor=0, gid=6),
            E("ln", tarfile.SYMTYPE, linkname="su", uid=55, gid=56),
            E("cap", data=b"x", pax={"SCHILY.xattr.trusted.test": "v"}),
        ]
    )
    apply(data, dest)
    st = os.lstat(dest / "su")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1001, 0o4755)
    st = os.lstat(dest / "sg")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (7, 8, 0o2775)
    st = os.lstat(dest / "null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    st = os.lstat(dest / "loop")
    assert stat.S_ISBLK(st.st_mode) and st.st_gid == 6
    st = os.lstat(dest / "ln")
    assert (st.st_uid, st.st_gid) == (55, 56)
    assert os.getxattr(dest / "cap", "trusted.test") == b"v"


@needs_root
def test_whiteouts_and_opaque(dest: Path) -> None:
    """.wh.<name> becomes a 0:0 char device named <name>; .wh..wh..opq sets trusted.overlay.opaque=y; AUFS metadata is skipped."""
    data = build(
        [
            E("etc", tarfile.DIRTYPE, mode=0o755),
            E("etc/.wh.motd"),
            E("var/.wh..wh..opq"),
            E("var/new", data=b"n"),
            E(".wh..wh.plnk", tarfile.DIRTYPE),
            E("gone", data=b"x"),
            E(".wh.gone"),
        ]
    )
    apply(data, dest)
    st = os.lstat(dest / "etc/motd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert os.getxattr(dest / "var", "trusted.overlay.opaque") == b"y"
    assert (dest / "var/new").read_bytes() == b"n"
    assert not os.path.lexists(dest / ".wh..wh.plnk")
    assert stat.S_ISCHR(os.lstat(dest / "gone").st_mode)
    assert sorted(os.listdir(dest)) == ["etc", "gone", "var"]


# --- attacks -------------------------------------------------------------------------

ATTACKS: list[tuple[str, list[E], str]] = [
    ("dotdot", [E("../outside/secret", data=b"pwned")], "../outside/secret"),
    ("dotdot-deep", [E("a/../../outside/secret", data=b"pwned")], "a/../../outside/secret"),
    ("dotdot-dir", [E("../outside/newdir", tarfile.DIRTYPE)], "../outside/newdir"),
    (
        "symlink-abs-then-write",
        [E("evil", tarfile.SYMTYPE, linkname="OUTSIDE"), E("evil/secret", data=b"pwned")],
        "evil/secret",
    ),
    (
        "symlink-rel-then-write",
        [E("evil", tarfile.SYMTYPE, linkname="../outside"), E("evil/secret", data=b"pwned")],
        "evil/secret",
    ),
    (
        "symlink-then-mkdir",
        [E("evil", tarfile.SYMTYPE, linkname="../outside"), E("evil/newdir", tarfile.DIRTYPE)],
        "evil/newdir",
    ),
    (
        "symlink-then-symlink-inside",
        [E("evil", tarfile.SYMTYPE, linkname="../outside"), E("evil/l", tarfile.SYMTYPE, linkname="/x")],
        "evil/l",
    ),
    (
        "symlink-chain",
        [
            E("a", tarfile.SYMTYPE, linkname="b"),
            E("b", tarfile.SYMTYPE, linkname="../outside"),
            E("a/secret", data=b"pwned"),
        ],
        "a/secret",
    ),
    (
        "traverse-inside-symlink",
        [E("real", tarfile.DIRTYPE), E("alias", tarfile.SYMTYPE, linkname="real"), E("alias/f", data=b"x")],
        "alias/f",
    ),
    ("hardlink-dotdot", [E("h", tarfile.LNKTYPE, linkname="../outside/secret")], "h"),
    ("hardlink-absolute-host-file", [E("h", tarfile.LNKTYPE, linkname="OUTSIDE/secret")], "h"),
    (
        "hardlink-through-symlink",
        [E("evil", tarfile.SYMTYPE, linkname="../outside"), E("h", tarfile.LNKTYPE, linkname="evil/secret")],
        "h",
    ),
    (
        "whiteout-through-symlink",
        [E("evil", tarfile.SYMTYPE, linkname="../outside"), E("evil/.wh.secret")],
        "evil/.wh.secret",
    ),
    (
        "opaque-through-symlink",
        [E("evil", tarfile.SYMTYPE, linkname="../outside"), E("evil/.wh..wh..opq")],
        "evil/.wh..wh..opq",
    ),
    ("whiteout-dotdot", [E(".wh...")], ".wh..."),
]


@pytest.mark.parametrize("entries, member", [(a[1], a[2]) for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_attack_fails_and_changes_nothing_outside(
    dest: Path, outside: Path, entries: list[E], member: str
) -> None:
    """Each escape attempt raises a CriError naming the member (and layer), and the outside tree is unchanged."""
    fixed = [
        E(
            e.name.replace("OUTSIDE", str(outside)),
            e.type,
            e.data,
            e.mode,
            e.linkname.replace("OUTSIDE", str(outside)),
        )
        for e in entries
    ]
    before = tree(outside.parent / "outside")
    with pytest.raises(CriError) as info:
        apply(build(fixed), dest, layer="sha256:evil")
    message = str(info.value)
    assert "sha256:evil" in message
    assert repr(member.replace("OUTSIDE", str(outside))) in message
    assert tree(outside) == before
    assert sorted(os.listdir(outside.parent)) == ["dest", "outside"]


def test_absolute_names_stay_inside(dest: Path, outside: Path) -> None:
    """An absolute member name lands under the destination, not on the host."""
    target = outside / "abs-target"
    apply(build([E(str(target), data=b"inside")]), dest)
    assert not target.exists()
    assert (dest / str(target).lstrip("/")).read_bytes() == b"inside"


def test_file_over_symlink_replaces_the_link(dest: Path, outside: Path) -> None:
    """A regular file written where an earlier member put a symlink replaces the link, never writes through it."""
    apply(build([E("x", tarfile.SYMTYPE, linkname=str(outside / "secret")), E("x", data=b"new")]), dest)
    assert (outside / "secret").read_bytes() == b"untouched"
    assert not (dest / "x").is_symlink() and (dest / "x").read_bytes() == b"new"


@needs_root
def test_whiteout_of_symlink_does_not_follow_it(dest: Path, outside: Path) -> None:
    """Whiting out a symlink to an outside directory removes the link only."""
    apply(build([E("link", tarfile.SYMTYPE, linkname=str(outside)), E(".wh.link")]), dest)
    assert (outside / "secret").read_bytes() == b"untouched"
    assert stat.S_ISCHR(os.lstat(dest / "link").st_mode)


# --- bad input ---------------------------------------------------------------------------


def test_truncated_gzip_names_the_layer(dest: Path) -> None:
    """A gzip layer cut short fails with PullError(bad_layer) naming the layer."""
    blob = gzip.compress(build([E("f", data=os.urandom(200_000))]))
    with pytest.raises(PullError) as info:
        apply(blob[: len(blob) // 2], dest, TGZ, layer="sha256:cut")
    assert info.value.reason == "bad_layer" and "sha256:cut" in str(info.value)
    assert "truncated" in str(info.value) or "ends inside" in str(info.value)


def test_truncated_gzip_trailer_is_detected(dest: Path) -> None:
    """Losing only the gzip trailer (CRC and size) is still a truncated layer."""
    blob = gzip.compress(build([E("f", data=b"abc")]))
    with pytest.raises(PullError, match="truncated"):
        apply(blob[:-4], dest, TGZ)


@pytest.mark.parametrize("cut", [4, 1])
def test_truncated_zstd_checksum_is_detected(dest: Path, cut: int) -> None:
    """Losing only (part of) the frame's checksum, after the whole tar, is
    still a truncated layer: the decoder alone would end quietly there."""
    blob = zstandard.ZstdCompressor(write_checksum=True).compress(build([E("f", data=b"abc")]))
    with pytest.raises(PullError, match="zstd stream is truncated"):
        apply(blob[:-cut], dest, TZST)


def test_truncated_zstd_names_the_layer(dest: Path) -> None:
    """A zstd layer cut short fails with PullError(bad_layer) naming the layer."""
    blob = zstandard.ZstdCompressor().compress(build([E("f", data=os.urandom(200_000))]))
    with pytest.raises(PullError) as info:
        apply(blob[:-100], dest, TZST, layer="sha256:cutz")
    assert info.value.reason == "bad_layer" and "sha256:cutz" in str(info.value)


def test_zstd_reads_hand_over_whole_chunks() -> None:
    """Each zstd read but the last carries at least a CHUNK, however small the
    pieces one input slice yields (each read is a hand-off between threads)."""
    data = os.urandom(CHUNK // 2) * 7 + b"tail"
    frames = b"".join(zstandard.ZstdCompressor().compress(data[i : i + 300_000]) for i in range(0, len(data), 300_000))
    read = decompressed(io.BytesIO(frames), "blob")
    sizes = []
    while chunk := read(CHUNK):
        sizes.append(len(chunk))
    assert sum(sizes) == len(data)
    assert len(sizes) > 1 and all(size >= CHUNK for size in sizes[:-1])


def test_a_zstd_bomb_is_read_a_chunk_at_a_time() -> None:
    """256 MiB of zeros compress to a few KiB; no read holds more than a CHUNK of it."""
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (256 << 20))
    assert len(bomb) < (64 << 10)
    read = decompressed(io.BytesIO(bomb), "bomb")
    assert [len(read(CHUNK)) for _ in range(3)] == [CHUNK] * 3


def test_truncated_tar_names_the_layer(dest: Path) -> None:
    """An uncompressed tar cut inside a member's data is a bad layer."""
    data = build([E("f", data=os.urandom(10_000))])
    with pytest.raises(PullError, match="sha256:t.*ends inside"):
        apply(data[:3000], dest, TAR, layer="sha256:t")


@pytest.mark.parametrize(
    "blob, media_type, reason",
    [
        (b"garbage" * 200, TAR, "bad_layer"),
        (gzip.compress(b"not a tar" * 100), TGZ, "bad_layer"),
        (b"\x1f\x8b" + b"\0" * 100, TGZ, "bad_layer"),
        (build([E("f")]), "application/vnd.example.layer", "bad_media_type"),
        (build([E("f")]), TGZ, "bad_layer"),
        (gzip.compress(build([E("f")])), TAR, "bad_layer"),
        (gzip.compress(build([E("f")])), TZST, "bad_layer"),
    ],
    ids=["garbage", "gzip-of-garbage", "corrupt-gzip", "unknown-media-type", "tar-labelled-gzip",
         "gzip-labelled-tar", "gzip-labelled-zstd"],
)
def test_bad_blobs(dest: Path, blob: bytes, media_type: str, reason: str) -> None:
    """Garbage, corrupt compression, unknown media types and media type/magic mismatches are PullErrors."""
    with pytest.raises(PullError) as info:
        apply(blob, dest, media_type, layer="sha256:bad")
    assert info.value.reason == reason and "sha256:bad" in str(info.value)


def test_sparse_members_are_refused(dest: Path) -> None:
    """GNU sparse members are refused rather than unpacked wrongly."""
    data = bytearray(build([E("f", data=b"x")], tarfile.GNU_FORMAT))
    data[156] = ord("S")
    data[148:156] = b"%06o\0 " % (sum(data[:148]) + 256 + sum(data[156:512]))
    with pytest.raises(PullError, match="sparse"):
        apply(bytes(data), dest)


@pytest.mark.parametrize(
    "prefix, compression",
    [(b"\x1f\x8b\x08", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"etc/", ""), (b"", "")],
)
def test_sniff(prefix: bytes, compression: str) -> None:
    """Magic bytes identify gzip and zstd; anything else is plain tar."""
    assert sniff_compression(prefix) == compression


def test_choose_compression_accepts_matching() -> None:
    """A media type and magic bytes that agree give the compression."""
    assert choose_compression(DOCKER_TGZ, b"\x1f\x8b", "l") == "gzip"
    assert choose_compression(TZST, b"\x28\xb5\x2f\xfd", "l") == "zstd"


# --- the parser against the stdlib's ---------------------------------------------


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_parser_agrees_with_tarfile(fmt: int) -> None:
    """Names, types, modes, ids, times, links and sizes parse as the stdlib reads them."""
    entries = [
        E("dir", tarfile.DIRTYPE, mode=0o755, uid=1, gid=2, mtime=12345),
        E("dir/file", data=b"hello", mode=0o640, uid=1000, gid=1000),
        E("dir/" + "p" * 90 + "/" + "q" * 90, data=b"prefix-split"),
        E("link", tarfile.SYMTYPE, linkname="dir/file"),
        E("hard", tarfile.LNKTYPE, linkname="dir/file"),
        E("dev", tarfile.CHRTYPE, devmajor=4, devminor=64),
        E("fifo", tarfile.FIFOTYPE),
    ]
    if fmt != tarfile.USTAR_FORMAT:
        entries.append(E("big-uid", data=b"u", uid=3_000_000_000, gid=2_500_000_000))
    data = build(entries, fmt)
    stream = tar_stream.TarStream(io.BytesIO(data).read, 4096)
    ours = []
    while (m := stream.next()) is not None:
        content = b"".join(bytes(v) for v in stream.data(m.size))
        ours.append((m.name, m.type, m.mode, m.uid, m.gid, m.mtime_ns // 10**9, m.linkname, m.size, content,
                     m.devmajor, m.devminor))
    theirs = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for ti in tf:
            f = tf.extractfile(ti) if ti.isreg() else None
            theirs.append((ti.name, ti.type.decode(), ti.mode, ti.uid, ti.gid, int(ti.mtime), ti.linkname,
                           ti.size if ti.isreg() else 0, f.read() if f else b"", ti.devmajor, ti.devminor))
    assert ours == theirs


def test_parser_skips_unread_data() -> None:
    """Members whose data the caller never reads are skipped correctly."""
    data = build([E("a", data=os.urandom(5000)), E("b", data=b"second")])
    stream = tar_stream.TarStream(io.BytesIO(data).read, 1000)
    assert (m := stream.next()) is not None and m.name == "a"
    m = stream.next()
    assert m is not None and m.name == "b"
    assert b"".join(bytes(v) for v in stream.data(m.size)) == b"second"
    assert stream.next() is None


@pytest.mark.parametrize(
    "raw, value",
    [(b"0000644\0", 0o644), (b"     17 ", 0o17), (b"\0" * 8, 0), (b"\x80" + b"\0" * 3 + (2**40).to_bytes(8, "big"), 2**40),
     (b"\xff" * 12, -1)],
)
def test_parse_number(raw: bytes, value: int) -> None:
    """Header numbers: octal with NUL/space padding, GNU base-256 positive and negative."""
    assert tar_stream.parse_number(raw, "x") == value


@pytest.mark.parametrize(
    "text, ns",
    [("1700000000", 1_700_000_000 * 10**9), ("1700000000.5", 1_700_000_000 * 10**9 + 500_000_000),
     ("1.123456789123", 1_123_456_789), ("-1.5", -1_500_000_000)],
)
def test_parse_pax_time(text: str, ns: int) -> None:
    """PAX times keep nanoseconds and negative values."""
    assert tar_stream.parse_pax_time(text) == ns
