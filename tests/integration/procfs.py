"""Reading every process's /proc files, for tests that look for what a run left."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def each_process(name: str) -> Iterator[tuple[int, bytes]]:
    """(pid, contents of /proc/<pid>/<name>) for every process; one that exits
    while it is read (or hides the file) is passed over."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            data = (entry / name).read_bytes()
        except OSError:
            continue
        yield int(entry.name), data
