"""What importing the cgroup package costs: every dockyard-runc call builds a
manager, and most of them (start, delete, kill, state) only look at, freeze
or remove the cgroup.  Those must load neither the slow stdlib modules nor
the controller writers; create's apply() loads the writers on demand."""

from __future__ import annotations

from pathlib import Path

import pytest
from fresh_interpreter import run_fresh

SLOW = {"re", "enum", "collections", "functools", "typing"}

# Run in a fresh `python3 -IS`, like the dockyard-runc launcher.  argv: the
# root of a fake tree, its mountinfo text, layout.  Prints the modules loaded
# by the calls that only look, then those loaded by apply().
SCRIPT = """\
import os
before = set(sys.modules)
from dockyard.runtime.cgroups import new_manager
def rmdir(path):  # the kernel drops the control files with the cgroup
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))
    os.rmdir(path)
mgr = new_manager("/dy/c1", "c1", root=sys.argv[1], mountinfo_text=sys.argv[2], proc_cgroup_text="0::/\\n",
                  rmdir=rmdir, allow_unenforced_devices=True)
mgr.create()
assert mgr.exists() and not mgr.is_frozen() and mgr.pids() == []
if sys.argv[3] == "v1":  # the fake freezer.state reads back what is written
    mgr.freeze(); assert mgr.is_frozen(); mgr.thaw()
print(" ".join(sorted(set(sys.modules) - before)))
before = set(sys.modules)
mgr.apply({"pids": {"limit": 10}})
print(" ".join(sorted(set(sys.modules) - before)))
mgr.destroy()
assert not mgr.exists()
"""


def run(tmp_path: Path, layout: str) -> tuple[set[str], set[str]]:
    mountinfo = fake_tree(tmp_path, layout)
    out = run_fresh(SCRIPT, str(tmp_path), mountinfo, layout).split("\n")
    return set(out[0].split()), set(out[1].split())


def fake_tree(root: Path, layout: str) -> str:
    """A hierarchy with the container's cgroup already in it (the manager's
    default mkdir cannot make control files); returns its mountinfo."""
    files = ["cgroup.procs", "freezer.state", "pids.max"] if layout == "v1" else \
        ["cgroup.procs", "cgroup.controllers", "cgroup.subtree_control", "cgroup.events", "pids.max"]
    hierarchies = ["freezer", "pids"] if layout == "v1" else [""]
    for h in hierarchies:
        for level in ("", "dy", "dy/c1"):
            (root / h / level).mkdir(exist_ok=True)
            for f in files:
                # (a v2 cgroup lists the controllers whose files it has)
                text = {"freezer.state": "THAWED\n", "cgroup.controllers": "pids\n"}.get(f, "")
                (root / h / level / f).write_text(text)
    if layout == "v2":
        (root / "cgroup.controllers").write_text("pids\n")
        return f"30 23 0:40 / {root} rw - cgroup2 cgroup2 rw\n"
    return "".join(f"3{i} 23 0:4{i} / {root}/{h} rw - cgroup cgroup rw,{h}\n" for i, h in enumerate(hierarchies))


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_looking_at_a_cgroup_loads_no_slow_module_and_no_writer(tmp_path: Path, layout: str) -> None:
    looked, applied = run(tmp_path, layout)
    assert not looked & SLOW, looked
    assert f"dockyard.runtime.cgroups.{layout}.manager" in looked
    cgroups = {m.removeprefix("dockyard.runtime.cgroups.") for m in looked if m.startswith("dockyard.runtime.cgroups.")}
    assert cgroups <= {"cgroup_path", "cgroupfs", "mode", "mountinfo", "locate",
                       "v1", "v1.freezer", "v1.manager", "v2", "v2.freezer", "v2.manager"}, cgroups
    # apply() brings in the writers it needs, still without the slow modules.
    assert f"dockyard.runtime.cgroups.{layout}.pids" in applied
    assert "dockyard.runtime.cgroups.manager" in applied
    assert not applied & SLOW, applied
    # only the writer of a key present is loaded (v1/manager.py, plan)
    writers = {"v1": {"cpu", "cpuset", "memory", "blkio", "network", "hugetlb", "devices"},
               "v2": {"cpu", "cpuset", "memory", "io", "hugetlb", "devices", "unified"}}[layout]
    assert not applied & {f"dockyard.runtime.cgroups.{layout}.{w}" for w in writers}, applied
