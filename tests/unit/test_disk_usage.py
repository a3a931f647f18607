"""tree_usage counts as du does: allocated blocks, each inode once, vanished entries skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dockyard.cri import disk_usage
from dockyard.cri.disk_usage import tree_usage


def blocks(*paths: Path) -> int:
    return sum(os.lstat(p).st_blocks * 512 for p in paths)


def test_counts_every_inode_once(tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "d").mkdir(parents=True)
    f = root / "d" / "f"
    f.write_bytes(b"x" * 10000)
    os.link(f, root / "hard")
    (root / "link").symlink_to("d/f")
    assert tree_usage(str(root)) == (blocks(root, root / "d", f, root / "link"), 4)


def test_a_missing_tree_is_empty(tmp_path: Path) -> None:
    assert tree_usage(str(tmp_path / "nope")) == (0, 0)


def test_entries_vanishing_during_the_walk_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GC deletes beside the walk: a directory gone before scandir, a file gone before its stat."""
    root = tmp_path / "t"
    (root / "gone-dir").mkdir(parents=True)
    (root / "gone-file").write_text("x")
    (root / "kept").write_text("y")
    real_scandir = os.scandir

    def racing_scandir(path: str) -> object:
        if path == str(root):
            entries = list(real_scandir(path))
            os.rmdir(root / "gone-dir")
            os.unlink(root / "gone-file")

            class It:
                def __enter__(self) -> list[os.DirEntry[str]]:
                    return entries

                def __exit__(self, *exc: object) -> None:
                    pass

                def __iter__(self):  # type: ignore[no-untyped-def]
                    return iter(entries)

            return It()
        return real_scandir(path)

    monkeypatch.setattr(disk_usage.os, "scandir", racing_scandir)
    used, inodes = tree_usage(str(root))
    assert inodes == 2 and used == blocks(root, root / "kept")
