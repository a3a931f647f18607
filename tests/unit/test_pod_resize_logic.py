"""In-place pod resize, the pure parts: ContainerStatus.resources is the
inverse of the CRI -> OCI conversion, and UpdatePodSandboxResources' pod
cgroup plan (resources plus overhead, v1 and v2 files in an order the kernel
accepts) lands in a fake cgroup tree, or fails naming the CRI field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cri_messages import res
from dockyard.cri import errors
from dockyard.cri.oci.resources import cri_resources, linux_resources
from dockyard.cri.pod_cgroup import CgroupWrite, apply_pod_resources, resource_writes, shares_to_weight, with_overhead
from dockyard.cri.bundle_facts import facts_of
from dockyard.cri.server.container_status import spec_resources


@pytest.mark.parametrize("fields", [
    {},
    {"cpu_shares": 102, "cpu_quota": 25000, "cpu_period": 100000, "memory_limit_in_bytes": 64 << 20},
    {"cpu_shares": 2, "cpu_quota": -1, "cpu_period": 100000},
    {"cpuset_cpus": "0-1", "cpuset_mems": "0", "memory_limit_in_bytes": 32 << 20, "memory_swap_limit_in_bytes": -1},
    {"memory_limit_in_bytes": 32 << 20, "memory_swap_limit_in_bytes": 64 << 20, "hugepage_limits": [("2MB", 4 << 21)]},
    {"unified": {"memory.high": "1000000", "memory.oom.group": "1"}},
])
def test_status_resources_are_what_was_asked(fields: dict[str, Any]) -> None:
    """What kubelet sent (CRI) -> the spec's linux.resources -> what ContainerStatus reports: the same values,
    so kubelet sees its resize done."""
    asked = res(**fields)
    assert cri_resources(linux_resources(asked, "linux")) == asked


def test_status_resources_from_a_spec() -> None:
    """The spec's oomScoreAdj shows too; a spec without linux resources reports none set; a broken one nothing."""
    spec = {"process": {"oomScoreAdj": 500}, "linux": {"resources": {"cpu": {"shares": 512}, "devices": [{"allow": False}]}}}
    assert spec_resources(facts_of(spec)) == res(cpu_shares=512, oom_score_adj=500)
    assert spec_resources(facts_of({"linux": {}})) == res()
    assert spec_resources(facts_of({"linux": {"resources": {"cpu": {"shares": "x"}}}})) is None


@pytest.mark.parametrize(("resources", "overhead", "total"), [
    ({"cpu_shares": 1024, "cpu_quota": 100000, "cpu_period": 100000, "memory_limit_in_bytes": 128 << 20},
     {"cpu_shares": 256, "cpu_quota": 25000, "memory_limit_in_bytes": 32 << 20},
     {"cpu_shares": 1280, "cpu_quota": 125000, "cpu_period": 100000, "memory_limit_in_bytes": 160 << 20}),
    # unlimited stays unlimited whatever the overhead
    ({"cpu_shares": 2, "cpu_quota": -1, "cpu_period": 100000}, {"cpu_quota": 25000, "memory_limit_in_bytes": 1 << 20},
     {"cpu_shares": 2, "cpu_quota": -1, "cpu_period": 100000}),
    ({"memory_limit_in_bytes": 64 << 20}, {}, {"memory_limit_in_bytes": 64 << 20}),
])
def test_pod_cgroup_holds_resources_plus_overhead(resources: dict[str, Any], overhead: dict[str, Any],
                                                   total: dict[str, Any]) -> None:
    assert with_overhead(res(**resources), res(**overhead)) == res(**total)


def files(writes: list[CgroupWrite]) -> list[tuple[str, str]]:
    return [(w.file, w.value) for w in writes]


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, []),
    ({"cpu_shares": 1024}, [("cpu.shares", "1024"), ("cpu.weight", str(shares_to_weight(1024)))]),
    # the quota is lifted before the period is written (v1 checks the ratio at each write)
    ({"cpu_quota": 50000, "cpu_period": 100000},
     [("cpu.cfs_quota_us", "-1"), ("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "50000"),
      ("cpu.max", "50000 100000")]),
    ({"cpu_quota": -1, "cpu_period": 100000},
     [("cpu.cfs_quota_us", "-1"), ("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "-1"), ("cpu.max", "max 100000")]),
    ({"cpu_quota": 20000}, [("cpu.cfs_quota_us", "20000"), ("cpu.max", "20000")]),
    ({"memory_limit_in_bytes": 64 << 20},
     [("memory.limit_in_bytes", str(64 << 20)), ("memory.max", str(64 << 20))]),
    # memory+swap is lifted first: v1 wants memory <= memsw at every write
    ({"memory_limit_in_bytes": 64 << 20, "memory_swap_limit_in_bytes": 96 << 20},
     [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", str(64 << 20)), ("memory.max", str(64 << 20)),
      ("memory.memsw.limit_in_bytes", str(96 << 20)), ("memory.swap.max", str(32 << 20))]),
    ({"cpuset_cpus": "0", "cpuset_mems": "0"}, [("cpuset.cpus", "0"), ("cpuset.mems", "0")]),
    ({"hugepage_limits": [("2MB", 4 << 20)]},
     [("hugetlb.2MB.limit_in_bytes", str(4 << 20)), ("hugetlb.2MB.max", str(4 << 20))]),
])
def test_pod_cgroup_writes(fields: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert files(resource_writes(linux_resources(res(**fields), "resources"))) == expected


def fake_tree(root: Path, layout: dict[str, list[str]], pod: str) -> dict[str, Path]:
    """Hierarchies (name -> control files) with the pod's directory in each."""
    made = {}
    for name, names in layout.items():
        d = root / name / pod.strip("/")
        d.mkdir(parents=True)
        for f in names:
            (d / f).write_text("0\n")
        made[name] = d
    return made


V1 = {"cpu,cpuacct": ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"],
      "memory": ["memory.limit_in_bytes"], "unified": ["cgroup.procs"]}


def test_apply_writes_each_file_where_it_exists(tmp_path: Path) -> None:
    """On a v1 host the v1 names land in their hierarchies (a symlinked one once), the v2 names nowhere."""
    dirs = fake_tree(tmp_path, V1, "/kubepods/pod1")
    os.symlink("cpu,cpuacct", tmp_path / "cpu")
    writes = resource_writes(linux_resources(res(cpu_shares=512, cpu_quota=30000, cpu_period=100000,
                                                 memory_limit_in_bytes=64 << 20), "resources"))
    apply_pod_resources("/kubepods/pod1", writes, "resources", str(tmp_path))
    cpu, mem = dirs["cpu,cpuacct"], dirs["memory"]
    assert (cpu / "cpu.shares").read_text() == "512"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "30000"
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (mem / "memory.limit_in_bytes").read_text() == str(64 << 20)
    assert not (mem / "memory.max").exists()


def test_apply_on_a_v2_host(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    pod = tmp_path / "kubepods" / "pod1"
    pod.mkdir(parents=True)
    for f in ("cpu.weight", "cpu.max", "memory.max"):
        (pod / f).write_text("0\n")
    writes = resource_writes(linux_resources(res(cpu_shares=1024, cpu_quota=50000, cpu_period=100000,
                                                 memory_limit_in_bytes=32 << 20), "resources"))
    apply_pod_resources("/kubepods/pod1", writes, "resources", str(tmp_path))
    assert (pod / "cpu.max").read_text() == "50000 100000"
    assert (pod / "cpu.weight").read_text() == "39"
    assert (pod / "memory.max").read_text() == str(32 << 20)


@pytest.mark.parametrize(("fields", "message"), [
    ({"hugepage_limits": [("2MB", 1 << 21)]}, "resources.hugepage_limits[0]: the pod cgroup /p has no controller"),
    ({"cpuset_cpus": "0"}, "resources.cpuset_cpus: the pod cgroup /p has no controller"),
])
def test_apply_refuses_what_no_hierarchy_takes(tmp_path: Path, fields: dict[str, Any], message: str) -> None:
    fake_tree(tmp_path, V1, "/p")
    with pytest.raises(errors.FailedPrecondition) as info:
        apply_pod_resources("/p", resource_writes(linux_resources(res(**fields), "resources")), "resources", str(tmp_path))
    assert str(info.value).startswith(message), str(info.value)


def test_apply_names_the_field_the_kernel_refused(tmp_path: Path) -> None:
    """A write the cgroup refuses (here: the file is a directory, EISDIR; EBUSY on a real
    memory limit below usage) is FailedPrecondition naming the field and the file."""
    dirs = fake_tree(tmp_path, {"memory": []}, "/p")
    (dirs["memory"] / "memory.limit_in_bytes").mkdir()
    with pytest.raises(errors.FailedPrecondition, match=r"^resources.memory_limit_in_bytes: the pod cgroup refused"):
        apply_pod_resources("/p", resource_writes(linux_resources(res(memory_limit_in_bytes=64 << 20), "resources")),
                            "resources", str(tmp_path))


def test_apply_to_a_missing_pod_cgroup(tmp_path: Path) -> None:
    fake_tree(tmp_path, V1, "/other")
    with pytest.raises(errors.FailedPrecondition, match="pod cgroup /p does not exist"):
        apply_pod_resources("/p", [CgroupWrite("cpu_shares", "cpu.shares", "2")], "resources", str(tmp_path))
    apply_pod_resources("/p", [], "resources", str(tmp_path))  # nothing to write: nothing to find
