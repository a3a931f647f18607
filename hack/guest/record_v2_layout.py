#!/usr/bin/env python3
"""Record what a real cgroup v2 tree looks like, in the test guest, for the unit tests' fake trees.

    hack/guest/run.py -- .venv/bin/python hack/guest/record_v2_layout.py
    cp build/guest/runs/<run>/cgroup_v2_layout.json tests/unit/data/

Makes /sys/fs/cgroup/dockyard-record/leaf with every controller the root
offers enabled above it, runs a little CPU, memory and block I/O in it, and
writes $DOCKYARD_GUEST_OUT/cgroup_v2_layout.json: the kernel release, each
level's file names (root, the parent, the leaf), and the text of the leaf's
files that the runtime reads (stats, events, limits). tests/guest checks that
the committed copy still matches the guest's kernel; tests/unit builds its
fake trees and feeds its stats parsers from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PARENT = ROOT / "dockyard-record"
LEAF = PARENT / "leaf"

# The leaf files whose text is recorded: what the runtime writes or reads back.
CONTENTS = [
    "cgroup.controllers", "cgroup.events", "cgroup.type", "cgroup.freeze", "cgroup.subtree_control",
    "cpu.stat", "cpu.max", "cpu.max.burst", "cpu.weight", "cpu.idle",
    "cpuset.cpus", "cpuset.mems", "cpuset.cpus.effective", "cpuset.mems.effective",
    "io.stat", "io.max", "io.weight",
    "memory.current", "memory.events", "memory.events.local", "memory.high", "memory.low", "memory.max",
    "memory.min", "memory.oom.group", "memory.peak", "memory.stat", "memory.swap.current", "memory.swap.events",
    "memory.swap.max",
    "pids.current", "pids.events", "pids.max",
    "hugetlb.2MB.current", "hugetlb.2MB.events", "hugetlb.2MB.max", "hugetlb.2MB.rsvd.current",
    "hugetlb.2MB.rsvd.max",
]


def listing(path: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(path) if e.is_file())


def main() -> int:
    out = Path(os.environ["DOCKYARD_GUEST_OUT"]) / "cgroup_v2_layout.json"
    offered = (ROOT / "cgroup.controllers").read_text().split()
    (ROOT / "cgroup.subtree_control").write_text(" ".join("+" + c for c in offered))
    PARENT.mkdir()
    try:
        (PARENT / "cgroup.subtree_control").write_text(" ".join("+" + c for c in offered))
        LEAF.mkdir()
        (LEAF / "memory.max").write_text(str(256 << 20))
        (LEAF / "pids.max").write_text("64")
        # Some work in the leaf, so the stat files hold numbers: CPU, block
        # I/O from the scratch disk, page cache, and a process that stays
        # with 16 MiB of anonymous memory while the files are read.
        work = (
            f"echo $$ > {LEAF}/cgroup.procs &&"
            " dd if=/dev/zero of=/dev/null bs=1M count=64 status=none &&"
            " dd if=/dev/vda of=/dev/null bs=64k count=64 iflag=direct status=none &&"
            " head -c 8388608 /dev/zero > /tmp/record-cache &&"
            f" exec {sys.executable} -c 'import sys; held = bytearray(16 << 20); print(\"ready\", flush=True);"
            " sys.stdin.read()'"
        )
        holder = subprocess.Popen(["sh", "-c", work], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
            record = {
                "kernel": os.uname().release,
                "root_files": listing(ROOT),
                "parent_files": listing(PARENT),
                "leaf_files": listing(LEAF),
                "leaf": {name: (LEAF / name).read_text() for name in CONTENTS if (LEAF / name).exists()},
            }
        finally:
            holder.communicate("")  # stdin closes: the holder exits
            os.unlink("/tmp/record-cache")
    finally:
        if LEAF.exists():
            LEAF.rmdir()
        PARENT.rmdir()
    out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(record['leaf_files'])} leaf files of {record['kernel']} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
