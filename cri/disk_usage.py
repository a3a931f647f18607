"""How much disk a directory tree takes, counted as du counts it (ImageFsInfo's numbers).

Blocks actually allocated (``st_blocks * 512``, so sparse files and holes
count as little as they take), and each inode once: a file hard-linked
twice in the tree is one inode and its blocks once.  The tree changes while
it is walked (garbage collection deletes blobs and snapshots, containers
write into their upper dirs): an entry gone before it is looked at is not
counted, never an error, so ImageFsInfo cannot fail because of a GC beside it.
"""

from __future__ import annotations

import os
import stat


def tree_usage(path: str) -> tuple[int, int]:
    """(bytes allocated, inodes) under ``path``, itself included, each inode once
    (hard links, as du counts them); entries removed during the walk are skipped."""
    seen: set[tuple[int, int]] = set()
    used = 0
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0, 0
    seen.add((st.st_dev, st.st_ino))
    used += st.st_blocks * 512
    stack = [path] if stat.S_ISDIR(st.st_mode) else []
    while stack:
        directory = stack.pop()
        try:
            it = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
                used += st.st_blocks * 512
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
    return used, len(seen)
