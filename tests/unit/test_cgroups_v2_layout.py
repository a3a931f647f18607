"""The v2 writers and readers against a real kernel's files (no root, no kernel here).

tests/unit/data/cgroup_v2_layout.json is what Debian's 6.1 kernel shows in
the test guest (hack/guest/record_v2_layout.py records it; the guest suite
checks the record still matches): each level's file names and the text of a
leaf cgroup's files while a process in it holds memory and has done CPU
and block I/O. The fake trees elsewhere are made from it too
(test_cgroups_v2.py, CONTROLLER_FILES).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime.cgroups.v2 import freezer
from dockyard.runtime.cgroups.v2.manager import V2Manager
from dockyard.runtime.kernel.cgroupfs import stats_v2

LAYOUT: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "cgroup_v2_layout.json").read_text())
LEAF: dict[str, str] = LAYOUT["leaf"]

EVERY_CONTROLLER: dict[str, Any] = {
    "memory": {"limit": 64 << 20, "reservation": 16 << 20, "swap": 96 << 20},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000, "idle": 0, "cpus": "1", "mems": "0"},
    "pids": {"limit": 32},
    "blockIO": {"weight": 500, "weightDevice": [{"major": 254, "minor": 0, "weight": 100}],
                "throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1 << 20}]},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}, {"pageSize": "1GB", "limit": 0}],
    "unified": {"memory.oom.group": "1", "memory.high": "1000000"},
}


@pytest.fixture
def real_leaf(tmp_path: Path) -> Path:
    """A directory with exactly the real leaf's file names (empty)."""
    leaf = tmp_path / "leaf"
    leaf.mkdir()
    for name in LAYOUT["leaf_files"]:
        (leaf / name).touch()
    return leaf


def test_every_file_the_manager_writes_is_a_real_file(real_leaf: Path) -> None:
    """A spec naming every controller plans writes only to files the real kernel has."""
    plan = V2Manager(str(real_leaf), root=str(real_leaf.parent)).plan(EVERY_CONTROLLER)
    files = {w.file for w in plan}
    assert files <= set(LAYOUT["leaf_files"]), files - set(LAYOUT["leaf_files"])
    # The probes saw the real files: swap accounting on, hugetlb reservations, no BFQ.
    assert {"memory.swap.max", "hugetlb.2MB.rsvd.max", "io.weight"} <= files
    assert "io.bfq.weight" not in files


def test_the_root_lacks_the_limit_files() -> None:
    """The root cgroup has no limits of its own (why containers never live there)."""
    root = set(LAYOUT["root_files"])
    assert {"memory.max", "cpu.max", "pids.max", "cgroup.freeze"}.isdisjoint(root)
    assert {"cgroup.controllers", "cgroup.subtree_control", "cgroup.procs", "memory.stat"} <= root


def test_stats_from_real_files() -> None:
    """events --stats' data from the recorded files: numbers as the files hold them, in runc's units."""
    data = stats_v2.collect(LEAF.get, ["2MB"])
    stat = dict(line.split() for line in LEAF["cpu.stat"].splitlines())
    assert data["cpu"]["usage"]["total"] == int(stat["usage_usec"]) * 1000 > 0
    assert data["memory"]["usage"]["usage"] == int(LEAF["memory.current"]) > 16 << 20
    assert data["memory"]["usage"]["limit"] == int(LEAF["memory.max"])
    assert data["memory"]["usage"]["max"] == int(LEAF["memory.peak"])
    assert data["memory"]["raw"]["anon"] >= 16 << 20
    assert data["memory"]["swap"]["limit"] == (1 << 64) - 1  # memory.swap.max is "max"
    assert data["memory"]["oom_kill"] == 0
    assert data["pids"] == {"current": int(LEAF["pids.current"]), "limit": int(LEAF["pids.max"])}
    reads = [e for e in data["blkio"]["ioServicedRecursive"] if e["op"] == "Read"]
    assert reads == [{"major": 254, "minor": 0, "op": "Read", "value": 64}]
    assert data["hugetlb"] == {"2MB": {"usage": 0, "max": 0, "failcnt": 0}}


def test_freezer_reads_real_events() -> None:
    """cgroup.events as the kernel writes it: a populated, thawed cgroup."""
    assert LEAF["cgroup.events"] == "populated 1\nfrozen 0\n"
    assert freezer.is_frozen(LEAF["cgroup.events"]) is False
    assert freezer.is_frozen(LEAF["cgroup.events"].replace("frozen 0", "frozen 1")) is True
