"""safe_path: tar member names become safe relative paths or are refused; whiteouts are recognised."""

from __future__ import annotations

import pytest

from dockyard.cri.errors import InvalidArgument
from dockyard.cri.snapshot.safe_path import Kind, Target, classify, relative_path, split


@pytest.mark.parametrize(
    "name, expected",
    [
        ("etc/passwd", "etc/passwd"),
        ("./etc/passwd", "etc/passwd"),
        ("/etc/passwd", "etc/passwd"),
        ("//etc//passwd/", "etc/passwd"),
        ("etc/./passwd", "etc/passwd"),
        ("./", ""),
        ("/", ""),
        (".", ""),
        ("a..b/..c/c..", "a..b/..c/c.."),
        ("...", "..."),
        ("usr/lib/\udcff-raw-byte", "usr/lib/\udcff-raw-byte"),
    ],
)
def test_relative_path_accepts(name: str, expected: str) -> None:
    """Ordinary names are normalised: absolute made relative, '.' and empty components dropped."""
    assert relative_path(name) == expected


@pytest.mark.parametrize(
    "name, words",
    [
        ("..", "'..'"),
        ("../etc/passwd", "'..'"),
        ("a/../../etc/passwd", "'..'"),
        ("a/../b", "'..'"),
        ("/../../etc", "'..'"),
        ("a/..", "'..'"),
        ("a\0b", "NUL"),
    ],
)
def test_relative_path_refuses(name: str, words: str) -> None:
    """Any '..' component or NUL byte is refused with an error naming the member."""
    with pytest.raises(InvalidArgument) as info:
        relative_path(name)
    assert repr(name) in str(info.value)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "name, target",
    [
        ("etc/passwd", Target(Kind.ENTRY, "etc/passwd")),
        ("etc/.wh.passwd", Target(Kind.WHITEOUT, "etc/passwd")),
        (".wh.etc", Target(Kind.WHITEOUT, "etc")),
        ("/var/.wh..wh..opq", Target(Kind.OPAQUE, "var")),
        (".wh..wh..opq", Target(Kind.OPAQUE, "")),
        ("a/.wh..wh.plnk", Target(Kind.SKIP, "a/.wh..wh.plnk")),
        ("a/.wh..wh.aufs", Target(Kind.SKIP, "a/.wh..wh.aufs")),
        ("a/x.wh.y", Target(Kind.ENTRY, "a/x.wh.y")),
        ("a/.wh.x/b", Target(Kind.ENTRY, "a/.wh.x/b")),
        ("./", Target(Kind.ENTRY, "")),
    ],
)
def test_classify(name: str, target: Target) -> None:
    """Whiteout and opaque markers are recognised only in the last component."""
    assert classify(name) == target


@pytest.mark.parametrize("name", ["a/.wh.", "a/.wh..", "a/.wh...", "../.wh.x", ".wh.x/../../y"])
def test_classify_refuses(name: str) -> None:
    """A whiteout naming nothing, '.' or '..' and any '..' path are refused."""
    with pytest.raises(InvalidArgument):
        classify(name)


@pytest.mark.parametrize("path, parts", [("a/b/c", ("a/b", "c")), ("a", ("", "a")), ("", ("", ""))])
def test_split(path: str, parts: tuple[str, str]) -> None:
    """split() gives (parent, base) with '' for the root."""
    assert split(path) == parts
