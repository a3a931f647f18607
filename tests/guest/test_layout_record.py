"""The unit tests' real v2 layout (tests/unit/data/cgroup_v2_layout.json) is still this kernel's.

hack/guest/record_v2_layout.py wrote it in this guest; running it again must
give the same file names at every level and the same keys in the files the
runtime parses. (The numbers differ from run to run; the shapes may not.)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from guest_env import REPO, run

RECORD = REPO / "tests" / "unit" / "data" / "cgroup_v2_layout.json"
KEYED = ["cgroup.events", "cpu.stat", "memory.events", "memory.stat", "memory.swap.events", "pids.events"]


def keys(text: str) -> list[str]:
    return [line.split()[0] for line in text.splitlines() if line]


def test_recorded_layout_matches_this_kernel(tmp_path: Path) -> None:
    """Same files at the root, a parent and a leaf, and the same keys in the flat-keyed files."""
    committed = json.loads(RECORD.read_text())
    if committed["kernel"] != os.uname().release:
        pytest.skip(f"the record is of {committed['kernel']}, this guest runs {os.uname().release}: "
                    "record it again (hack/guest/record_v2_layout.py says how)")
    done = run([sys.executable, str(REPO / "hack" / "guest" / "record_v2_layout.py")],
               env={**os.environ, "DOCKYARD_GUEST_OUT": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    fresh = json.loads((tmp_path / "cgroup_v2_layout.json").read_text())
    for level in ("root_files", "parent_files", "leaf_files"):
        assert fresh[level] == committed[level], level
    assert sorted(fresh["leaf"]) == sorted(committed["leaf"])
    for name in KEYED:
        assert keys(fresh["leaf"][name]) == keys(committed["leaf"][name]), name
