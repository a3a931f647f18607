"""A new v1 cpuset cgroup is given its parent's cpus and mems, and a parent
another runtime made but has not filled yet is filled first (found by
bench/density.py: pods created 10 at a time under one new parent failed
with ENOSPC)."""

from __future__ import annotations

from pathlib import Path

from dockyard.runtime.cgroups.v1.manager import _inherit_cpuset


def _level(path: Path, cpus: str, mems: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "cpuset.cpus").write_text(cpus)
    (path / "cpuset.mems").write_text(mems)
    return path


def test_fills_an_empty_parent_first(tmp_path: Path) -> None:
    root = _level(tmp_path / "cpuset", "0-1\n", "0\n")
    parent = _level(root / "kubepods", "\n", "\n")  # made by another runtime, not filled yet
    leaf = _level(parent / "pod1", "\n", "\n")
    _inherit_cpuset(str(leaf))
    assert [(p / "cpuset.cpus").read_text().strip() for p in (parent, leaf)] == ["0-1", "0-1"]
    assert [(p / "cpuset.mems").read_text().strip() for p in (parent, leaf)] == ["0", "0"]


def test_keeps_what_is_set(tmp_path: Path) -> None:
    root = _level(tmp_path / "cpuset", "0-1\n", "0\n")
    leaf = _level(root / "pod1", "1\n", "\n")
    _inherit_cpuset(str(leaf))
    assert (leaf / "cpuset.cpus").read_text().strip() == "1"
    assert (leaf / "cpuset.mems").read_text().strip() == "0"
