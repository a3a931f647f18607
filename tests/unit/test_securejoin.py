"""resolve_in_root / open_in_root keep every path inside the rootfs."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

import pytest

from dockyard.runtime.kernel.lean import leanos
from dockyard.runtime.kernel.errors import SyscallError
from dockyard.runtime.kernel.securejoin import open_in_root, resolve_in_root


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A rootfs with hostile links, and an outside dir next to it."""
    root = tmp_path / "rootfs"
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "tmp" / "x").mkdir(parents=True)
    (root / "usr" / "lib" / "file").write_text("f")
    os.symlink("usr/lib", root / "lib")             # relative
    os.symlink("../lib", root / "usr" / "lib2")     # relative with ..
    os.symlink("/usr/lib2", root / "libabs")        # absolute -> link -> link
    os.symlink("/tmp/x", root / "etc")              # absolute
    os.symlink("/tmp/x", root / "usr" / "abs")      # absolute, one level down
    os.symlink("../../../../..", root / "up")       # climbs far above root
    os.symlink(str(outside), root / "escape")       # absolute host path
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink("usr/lib/file", root / "filelink")
    return root, outside


@pytest.mark.parametrize(("path", "expected"), [
    ("/", ""),
    ("", ""),
    ("/usr/lib/file", "usr/lib/file"),
    ("usr//./lib/", "usr/lib"),
    ("/lib/file", "usr/lib/file"),
    ("/usr/lib2/file", "usr/lib/file"),
    ("/libabs/file", "usr/lib/file"),
    ("/etc/passwd", "tmp/x/passwd"),
    ("/usr/abs/passwd", "tmp/x/passwd"),
    ("/usr/abs/..", "tmp"),
    ("/../../..", ""),
    ("/../../../usr", "usr"),
    ("/up/usr", "usr"),
    ("/missing/a/../b", "missing/b"),
    ("/missing/../lib", "usr/lib"),
    ("/usr/lib/file/below", "usr/lib/file/below"),
])
def test_resolve_in_root(tree: tuple[Path, Path], path: str, expected: str) -> None:
    root, _ = tree
    assert resolve_in_root(str(root), path) == str(root / expected)


def test_resolve_in_root_host_symlink_stays_inside(tree: tuple[Path, Path]) -> None:
    """A link naming a host path means that path inside the rootfs, where it
    is missing, so it is appended literally under root."""
    root, outside = tree
    got = resolve_in_root(str(root), "/escape/new")
    assert got == str(root) + str(outside) + "/new"


def test_resolve_in_root_loop_is_eloop(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with pytest.raises(SyscallError) as info:
        resolve_in_root(str(root), "/loop1/x")
    assert info.value.errno == errno.ELOOP
    assert info.value.target == "/loop1/x"


def _fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


@pytest.mark.parametrize(("path", "expected"), [
    ("/", ""),
    ("/usr/lib/file", "usr/lib/file"),
    ("/lib/file", "usr/lib/file"),
    ("/libabs", "usr/lib"),
    ("/etc", "tmp/x"),
    ("/usr/abs", "tmp/x"),
    ("/usr/abs/..", "tmp"),
    ("/up/usr", "usr"),
    ("/filelink", "usr/lib/file"),
    ("/usr/lib/../../tmp", "tmp"),
])
def test_open_in_root_existing(tree: tuple[Path, Path], path: str, expected: str) -> None:
    root, _ = tree
    fd = open_in_root(str(root), path)
    try:
        assert os.fstat(fd).st_ino == os.stat(root / expected).st_ino
        assert fcntl_flags(fd) & os.O_PATH
        assert not os.get_inheritable(fd)
    finally:
        os.close(fd)


def fcntl_flags(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETFL)


@pytest.mark.parametrize(("path", "create", "made", "kind"), [
    ("/new/dir", "dir", "new/dir", stat.S_IFDIR),
    ("/new/file", "file", "new/file", stat.S_IFREG),
    ("/etc/resolv.conf", "file", "tmp/x/resolv.conf", stat.S_IFREG),
    ("/etc/sub/dir", "dir", "tmp/x/sub/dir", stat.S_IFDIR),
    ("/usr/abs/f", "file", "tmp/x/f", stat.S_IFREG),
    ("/lib/a/../b", "dir", "usr/lib/b", stat.S_IFDIR),
    ("/../../c", "dir", "c", stat.S_IFDIR),
])
def test_open_in_root_creates_inside(tree: tuple[Path, Path], path: str, create: str,
                                     made: str, kind: int) -> None:
    root, outside = tree
    fd = open_in_root(str(root), path, create=create, mode=0o700)  # type: ignore[arg-type]
    try:
        st = os.lstat(root / made)
        assert stat.S_IFMT(st.st_mode) == kind
        assert os.fstat(fd).st_ino == st.st_ino
        assert _fd_path(fd) == str(root / made)
    finally:
        os.close(fd)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("create", ["dir", "file"])
def test_open_in_root_never_creates_outside(tree: tuple[Path, Path], create: str) -> None:
    root, outside = tree
    fd = open_in_root(str(root), "/escape/evil/x", create=create)  # type: ignore[arg-type]
    os.close(fd)
    assert list(outside.iterdir()) == []
    # The host path the link named was recreated inside the rootfs instead.
    assert (root / str(outside).lstrip("/") / "evil" / "x").exists()


def test_open_in_root_missing_without_create(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with pytest.raises(SyscallError) as info:
        open_in_root(str(root), "/usr/nope/x")
    assert info.value.errno == errno.ENOENT
    assert info.value.target == "/usr/nope/x"
    assert not (root / "usr" / "nope").exists()


@pytest.mark.parametrize(("path", "err"), [
    ("/loop1", errno.ELOOP),
    ("/usr/lib/file/below", errno.ENOTDIR),
])
def test_open_in_root_errors(tree: tuple[Path, Path], path: str, err: int) -> None:
    root, _ = tree
    with pytest.raises(SyscallError) as info:
        open_in_root(str(root), path, create="dir")
    assert info.value.errno == err


def test_open_in_root_closes_what_it_opens(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    before = set(os.listdir("/proc/self/fd"))
    fd = open_in_root(str(root), "/libabs/file")
    os.close(fd)
    with pytest.raises(SyscallError):
        open_in_root(str(root), "/lib/missing/deeper")
    assert set(os.listdir("/proc/self/fd")) == before


def test_open_in_root_survives_swap_after_mkdir(tree: tuple[Path, Path],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory we just created and that a racing process replaces by a
    link to a host directory is followed inside root, never outside
    (the CVE-2021-30465 pattern, made deterministic)."""
    root, outside = tree
    real_mkdir = os.mkdir

    def mkdir_then_swap(path: str, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        real_mkdir(path, mode, dir_fd=dir_fd)
        if path == "victim":
            os.rmdir(path, dir_fd=dir_fd)
            os.symlink(str(outside), path, dir_fd=dir_fd)

    monkeypatch.setattr(leanos, "mkdir", mkdir_then_swap)  # the runtime's os (runtime/kernel/lean/leanos.py)
    fd = open_in_root(str(root), "/victim/sub", create="dir")
    os.close(fd)
    assert list(outside.iterdir()) == []
    assert (root / str(outside).lstrip("/") / "sub").is_dir()
