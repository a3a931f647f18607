"""runtime/kernel/lean/leanos.py and leanpath.py against the real os and posixpath."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pytest

from fresh_interpreter import run_fresh
from dockyard.runtime.kernel.lean import leanos, leanpath
from dockyard.runtime.kernel.cgroupfs import files as cgroupfs

PATHS = [
    "", "/", "//", "///", "////a", "a", "a/", "a//", "/a", "/a/", "//a", "//a/b", "///a/b",
    "a/b", "a/b/", "a//b", "/a//b///c", ".", "./", "./a", "a/.", "a/./b", "..", "../", "../a",
    "a/..", "a/../..", "a/../../b", "/..", "/../a", "/a/../../b", "a/b/../../..", "../../a/./b/",
    "/a/b/c/../d/./e", "a/.b", "a/..b", "...", "/a/.../b", "a/b/c/",
]


@pytest.mark.parametrize("p", PATHS)
@pytest.mark.parametrize("name", ["dirname", "basename", "split", "isabs", "normpath", "abspath"])
def test_one_path_functions_match_posixpath(name: str, p: str) -> None:
    assert getattr(leanpath, name)(p) == getattr(posixpath, name)(p)


JOINS = [("a",), ("a", "b"), ("a/", "b"), ("a", "/b"), ("", "b"), ("a", ""), ("/", "a", "b/", "c"),
         ("a", "b", "/c", "d"), ("a//", "b"), ("", ""), ("/x", "../y")]


@pytest.mark.parametrize("parts", JOINS)
def test_join_matches_posixpath(parts: tuple[str, ...]) -> None:
    assert leanpath.join(*parts) == posixpath.join(*parts)


@pytest.mark.parametrize(("p", "start"), [
    ("/a/b/c", "/a"), ("/a", "/a/b/c"), ("/a/b", "/a/b"), ("/a/b", "/x/y"), ("/", "/a"), ("/a", "/"),
    ("a/b", "a"), ("a", "."), ("/sys/fs/cgroup/x/y", "/sys/fs/cgroup"), ("/a//b/", "/a/./"),
])
def test_relpath_matches_posixpath(p: str, start: str) -> None:
    assert leanpath.relpath(p, start) == posixpath.relpath(p, start)


def test_relpath_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        leanpath.relpath("")


def test_predicates_match_os(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "dirlink").symlink_to(tmp_path / "dir")
    for name in ("dir", "file", "dangling", "dirlink", "nowhere", "file/below", "bad\0name"):
        p = str(tmp_path / name)
        for fn in ("exists", "lexists", "isdir"):
            assert getattr(leanpath, fn)(p) == getattr(os.path, fn)(p), (fn, name)


def test_realpath_is_the_kernels_resolution(tmp_path: Path) -> None:
    real = tmp_path / "real" / "dir"
    real.mkdir(parents=True)
    (tmp_path / "hop").symlink_to("real")
    (tmp_path / "abs").symlink_to(real)
    for p in ("hop/dir", "abs", "hop/../real/dir/.", "real/dir/"):
        assert leanpath.realpath(str(tmp_path / p)) == os.path.realpath(tmp_path / p) == str(real)
    # relative to the working directory, as posixpath's
    assert leanpath.realpath(".") == os.path.realpath(".")


def test_realpath_of_a_missing_path_is_only_made_absolute(tmp_path: Path) -> None:
    assert leanpath.realpath(str(tmp_path / "no" / ".." / "such")) == str(tmp_path / "such")


def test_functions_are_posix_own() -> None:
    # the same objects os re-exports: no wrapper, no drift
    for name in ("open", "close", "read", "write", "stat", "kill", "waitpid", "fork", "rmdir", "_exit",
                 "O_CLOEXEC", "O_PATH", "WNOHANG"):
        assert getattr(leanos, name) is getattr(os, name), name
    assert (leanos.SEEK_SET, leanos.SEEK_CUR, leanos.SEEK_END) == (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END)
    assert leanos.sep == os.sep
    assert not hasattr(leanos, "environ"), "a bytes environ under os's name would mislead"


@pytest.mark.parametrize("name", ["x", "ü", "a\udcffb", b"raw"])
def test_fsencode_matches_os(name: str | bytes) -> None:
    assert leanos.fsencode(name) == os.fsencode(name)


def test_makedirs(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    leanos.makedirs(str(target), 0o711)
    assert target.is_dir()
    assert target.stat().st_mode & 0o777 == 0o711 & ~_umask()
    leanos.makedirs(str(target), exist_ok=True)
    leanos.makedirs(str(target) + "/", exist_ok=True)
    with pytest.raises(FileExistsError):
        leanos.makedirs(str(target))
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):
        leanos.makedirs(str(tmp_path / "file"), exist_ok=True)  # exists, but not as a directory
    with pytest.raises(NotADirectoryError):
        leanos.makedirs(str(tmp_path / "file" / "below"))


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def _walk_order(top: Path, topdown: bool) -> list[str]:
    return [d for d, _, _ in os.walk(top, topdown=topdown)]


@pytest.mark.parametrize("leaves_first", [False, True])
def test_cgroup_dirs_under_has_walks_order(tmp_path: Path, leaves_first: bool) -> None:
    for d in ("a/x/deep", "a/y", "b", "c/z"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "a" / "file").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "a")  # not followed, as os.walk does not
    got = cgroupfs._dirs_under(str(tmp_path), leaves_first=leaves_first)
    want = _walk_order(tmp_path, topdown=not leaves_first)
    # os.walk lists in scandir order too, so the orders agree exactly
    assert got == want
    assert cgroupfs._dirs_under(str(tmp_path / "missing")) == []


def test_leanos_loads_no_os() -> None:
    # -S: no site, which imports os itself
    out = run_fresh("from dockyard.runtime.kernel.lean import leanos; leanos.path.join('a', 'b')\n"
                    "print('os' in sys.modules, 'posixpath' in sys.modules, '_collections_abc' in sys.modules)")
    assert out.split() == ["False", "False", "False"]
