"""cgroup v1: linux.resources -> file writes, and the v1 manager over a fake
cgroupfs tree in tmp_path (no root, no kernel)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime.cgroups import Mode, V1Manager, detect, new_manager, own_cgroups, v1_mounts
from dockyard.runtime.kernel.cgroupfs.cgroup_path import inner_path, place
from dockyard.runtime.cgroups.v1 import blkio, cpu, cpuset, devices, hugetlb, memory, network, pids
from dockyard.runtime.kernel.cgroupfs import stats_v1 as v1_stats
from dockyard.runtime.kernel.errors import FailedPrecondition, InvalidSpec, SyscallError, Unsupported

Writer = Callable[[dict[str, Any]], list[tuple[str, str]]]

# --- pure writers ------------------------------------------------------------

WRITES: list[tuple[str, Writer, dict[str, Any], list[tuple[str, str]]]] = [
    ("memory.limit", memory.writes, {"memory": {"limit": 1048576}}, [("memory.limit_in_bytes", "1048576")]),
    ("memory.limit -1 lifts memsw", memory.writes, {"memory": {"limit": -1}},
     [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]),
    ("memory.limit+swap: open memsw, limit, memsw", memory.writes, {"memory": {"limit": 100, "swap": 300}},
     [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "100"),
      ("memory.memsw.limit_in_bytes", "300")]),
    ("memory.limit+swap -1", memory.writes, {"memory": {"limit": 100, "swap": -1}},
     [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "100")]),
    ("memory.swap alone", memory.writes, {"memory": {"swap": 300}}, [("memory.memsw.limit_in_bytes", "300")]),
    ("memory.reservation", memory.writes, {"memory": {"reservation": 4096}},
     [("memory.soft_limit_in_bytes", "4096")]),
    ("memory.kernelTCP", memory.writes, {"memory": {"kernelTCP": 8192}},
     [("memory.kmem.tcp.limit_in_bytes", "8192")]),
    ("memory.kernel is ignored", memory.writes, {"memory": {"kernel": 8192}}, []),
    ("memory.swappiness", memory.writes, {"memory": {"swappiness": 0}}, [("memory.swappiness", "0")]),
    ("memory.disableOOMKiller", memory.writes, {"memory": {"disableOOMKiller": True}},
     [("memory.oom_control", "1")]),
    ("memory.disableOOMKiller false", memory.writes, {"memory": {"disableOOMKiller": False}}, []),
    ("memory.useHierarchy", memory.writes, {"memory": {"useHierarchy": True}}, [("memory.use_hierarchy", "1")]),
    ("memory 0 means unset", memory.writes, {"memory": {"limit": 0, "swap": 0}}, []),
    ("cpu.shares", cpu.writes, {"cpu": {"shares": 512}}, [("cpu.shares", "512")]),
    ("cpu.quota", cpu.writes, {"cpu": {"quota": 50000}}, [("cpu.cfs_quota_us", "50000")]),
    ("cpu.period", cpu.writes, {"cpu": {"period": 100000}}, [("cpu.cfs_period_us", "100000")]),
    ("cpu.quota+period: lift, period, quota", cpu.writes, {"cpu": {"quota": 50000, "period": 100000}},
     [("cpu.cfs_quota_us", "-1"), ("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "50000")]),
    ("cpu.quota -1 + period", cpu.writes, {"cpu": {"quota": -1, "period": 100000}},
     [("cpu.cfs_quota_us", "-1"), ("cpu.cfs_period_us", "100000")]),
    ("cpu.burst after quota", cpu.writes, {"cpu": {"quota": 50000, "burst": 1000}},
     [("cpu.cfs_quota_us", "50000"), ("cpu.cfs_burst_us", "1000")]),
    ("cpu.realtime period then runtime", cpu.writes, {"cpu": {"realtimeRuntime": 950, "realtimePeriod": 1000}},
     [("cpu.rt_period_us", "1000"), ("cpu.rt_runtime_us", "950")]),
    ("cpu.idle last", cpu.writes, {"cpu": {"idle": 1, "shares": 2}}, [("cpu.shares", "2"), ("cpu.idle", "1")]),
    ("cpuset.cpus/mems", cpuset.writes, {"cpu": {"cpus": "0-1, 3", "mems": "0"}},
     [("cpuset.cpus", "0-1,3"), ("cpuset.mems", "0")]),
    ("cpuset empty strings", cpuset.writes, {"cpu": {"cpus": "", "mems": ""}}, []),
    ("pids.limit", pids.writes, {"pids": {"limit": 20}}, [("pids.max", "20")]),
    ("pids.limit 0 is max", pids.writes, {"pids": {"limit": 0}}, [("pids.max", "max")]),
    ("pids.limit -1 is max", pids.writes, {"pids": {"limit": -1}}, [("pids.max", "max")]),
    ("blkio.weight", blkio.writes, {"blockIO": {"weight": 500}}, [("blkio.weight", "500")]),
    ("blkio.leafWeight", blkio.writes, {"blockIO": {"leafWeight": 300}}, [("blkio.leaf_weight", "300")]),
    ("blkio.weightDevice", blkio.writes,
     {"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 200, "leafWeight": 100}]}},
     [("blkio.weight_device", "8:0 200"), ("blkio.leaf_weight_device", "8:0 100")]),
    ("blkio.throttles", blkio.writes, {"blockIO": {
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2000}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 30}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 0}]}},
     [("blkio.throttle.read_bps_device", "8:0 1000"), ("blkio.throttle.write_bps_device", "8:0 2000"),
      ("blkio.throttle.read_iops_device", "8:16 30"), ("blkio.throttle.write_iops_device", "8:16 0")]),
    ("hugetlb", hugetlb.writes, {"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304},
                                                    {"pageSize": "1GB", "limit": 0}]},
     [("hugetlb.2MB.limit_in_bytes", "4194304"), ("hugetlb.1GB.limit_in_bytes", "0")]),
    ("devices: deny all first, rules in order", devices.writes, {"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
        {"allow": True, "type": "c", "major": 136, "access": "mwr"},
        {"allow": False, "type": "b", "major": 8, "minor": -1, "access": "m"}]},
     [("devices.deny", "a"), ("devices.deny", "a"), ("devices.allow", "c 1:3 rw"),
      ("devices.allow", "c 136:* rwm"), ("devices.deny", "b 8:* m")]),
    ("devices: allow all", devices.writes, {"devices": [{"allow": True}]},
     [("devices.deny", "a"), ("devices.allow", "a")]),
    ("devices: none", devices.writes, {"devices": []}, []),
    ("network.classID", network.classid_writes, {"network": {"classID": 1048577}},
     [("net_cls.classid", "1048577")]),
    ("network.priorities", network.priority_writes,
     {"network": {"priorities": [{"name": "eth0", "priority": 5}]}}, [("net_prio.ifpriomap", "eth0 5")]),
    ("nothing at all", memory.writes, {}, []),
]


@pytest.mark.parametrize("writer,resources,expected", [c[1:] for c in WRITES], ids=[c[0] for c in WRITES])
def test_writes(writer: Writer, resources: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    """Each resource field becomes exactly these writes, in this order."""
    assert writer(resources) == expected


INVALID: list[tuple[Writer, dict[str, Any], str]] = [
    (memory.writes, {"memory": []}, "linux.resources.memory"),
    (memory.writes, {"memory": {"limit": "1G"}}, "linux.resources.memory.limit"),
    (memory.writes, {"memory": {"limit": True}}, "linux.resources.memory.limit"),
    (memory.writes, {"memory": {"limit": -2}}, "linux.resources.memory.limit"),
    (memory.writes, {"memory": {"limit": 1.5}}, "linux.resources.memory.limit"),
    (memory.writes, {"memory": {"reservation": -5}}, "linux.resources.memory.reservation"),
    (memory.writes, {"memory": {"limit": 300, "swap": 100}}, "linux.resources.memory.swap"),
    (memory.writes, {"memory": {"limit": -1, "swap": 100}}, "linux.resources.memory.swap"),
    (memory.writes, {"memory": {"kernel": "x"}}, "linux.resources.memory.kernel"),
    (memory.writes, {"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness"),
    (memory.writes, {"memory": {"disableOOMKiller": 1}}, "linux.resources.memory.disableOOMKiller"),
    (cpu.writes, {"cpu": {"shares": -1}}, "linux.resources.cpu.shares"),
    (cpu.writes, {"cpu": {"quota": -7}}, "linux.resources.cpu.quota"),
    (cpu.writes, {"cpu": {"period": "100ms"}}, "linux.resources.cpu.period"),
    (cpu.writes, {"cpu": {"burst": 100}}, "linux.resources.cpu.burst"),
    (cpu.writes, {"cpu": {"idle": 2}}, "linux.resources.cpu.idle"),
    (cpu.writes, {"cpu": {"realtimePeriod": -1}}, "linux.resources.cpu.realtimePeriod"),
    (cpuset.writes, {"cpu": {"cpus": "0-"}}, "linux.resources.cpu.cpus"),
    (cpuset.writes, {"cpu": {"cpus": "3-1"}}, "linux.resources.cpu.cpus"),
    (cpuset.writes, {"cpu": {"mems": 0}}, "linux.resources.cpu.mems"),
    (pids.writes, {"pids": {"limit": "10"}}, "linux.resources.pids.limit"),
    (blkio.writes, {"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight"),
    (blkio.writes, {"blockIO": {"weight": 1001}}, "linux.resources.blockIO.weight"),
    (blkio.writes, {"blockIO": {"leafWeight": "x"}}, "linux.resources.blockIO.leafWeight"),
    (blkio.writes, {"blockIO": {"weightDevice": [{"minor": 0, "weight": 10}]}},
     "linux.resources.blockIO.weightDevice[0].major"),
    (blkio.writes, {"blockIO": {"weightDevice": ["8:0"]}}, "linux.resources.blockIO.weightDevice[0]"),
    (blkio.writes, {"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}},
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate"),
    (blkio.writes, {"blockIO": {"throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": -1}]}},
     "linux.resources.blockIO.throttleWriteIOPSDevice[0].rate"),
    (hugetlb.writes, {"hugepageLimits": [{"pageSize": "hugepages-2048kB", "limit": 1}]},
     "linux.resources.hugepageLimits[0].pageSize"),
    (hugetlb.writes, {"hugepageLimits": [{"pageSize": "2MB"}]}, "linux.resources.hugepageLimits[0].limit"),
    (hugetlb.writes, {"hugepageLimits": {"2MB": 1}}, "linux.resources.hugepageLimits"),
    (devices.writes, {"devices": [{"access": "rwm"}]}, "linux.resources.devices[0].allow"),
    (devices.writes, {"devices": [{"allow": True, "type": "p"}]}, "linux.resources.devices[0].type"),
    (devices.writes, {"devices": [{"allow": True, "access": "rwx"}]}, "linux.resources.devices[0].access"),
    (devices.writes, {"devices": [{"allow": True, "access": "rr"}]}, "linux.resources.devices[0].access"),
    (devices.writes, {"devices": [{"allow": True, "type": "c", "major": "1"}]},
     "linux.resources.devices[0].major"),
    (network.classid_writes, {"network": {"classID": -1}}, "linux.resources.network.classID"),
    (network.priority_writes, {"network": {"priorities": [{"name": "a b", "priority": 1}]}},
     "linux.resources.network.priorities[0].name"),
]


@pytest.mark.parametrize("writer,resources,field", INVALID)
def test_invalid_values_name_the_field(writer: Writer, resources: dict[str, Any], field: str) -> None:
    """A malformed value raises InvalidSpec whose field is the exact path."""
    with pytest.raises(InvalidSpec) as info:
        writer(resources)
    assert info.value.field == field


def test_swap_without_accounting_is_unsupported() -> None:
    """A finite swap on a kernel without memsw files is refused, naming swap;
    -1 is simply not written."""
    with pytest.raises(Unsupported) as info:
        memory.writes({"memory": {"limit": 100, "swap": 200}}, swap_accounting=False)
    assert info.value.target == "linux.resources.memory.swap"
    assert memory.writes({"memory": {"limit": -1}}, swap_accounting=False) == [("memory.limit_in_bytes", "-1")]


def test_blkio_bfq_names() -> None:
    """Without CFQ the weights go to the BFQ files."""
    res = {"blockIO": {"weight": 100, "weightDevice": [{"major": 8, "minor": 0, "weight": 50}]}}
    assert blkio.writes(res, bfq=True) == [("blkio.bfq.weight", "100"), ("blkio.bfq.weight_device", "8:0 50")]


def test_kernel_memory_is_reported_as_ignored() -> None:
    """memory.kernel is accepted, not written, and reported with a reason."""
    notes = memory.ignored({"memory": {"kernel": 1 << 20}})
    assert [f for f, _ in notes] == ["linux.resources.memory.kernel"]


# --- mountinfo, mode and paths ------------------------------------------------

HOST_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /mnt/with\\040space rw - cgroup cgroup rw,net_cls,net_prio
"""


def test_v1_mounts_lists_controllers_not_options() -> None:
    """Only controllers and name= survive; octal escapes are decoded."""
    assert v1_mounts(HOST_MOUNTINFO) == [
        ("/sys/fs/cgroup/cpu", "cpu"),
        ("/sys/fs/cgroup/cpuacct", "cpuacct"),
        ("/sys/fs/cgroup/cpuset", "cpuset"),
        ("/sys/fs/cgroup/memory", "memory"),
        ("/sys/fs/cgroup/systemd", "name=systemd"),
        ("/mnt/with space", "net_cls,net_prio"),
    ]


@pytest.mark.parametrize("text,mode", [
    (HOST_MOUNTINFO, Mode.HYBRID),
    ("\n".join(HOST_MOUNTINFO.splitlines()[:5]), Mode.V1),
    ("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate", Mode.V2),
])
def test_detect(text: str, mode: Mode) -> None:
    """The layout follows from what is mounted at and under the root."""
    assert detect("/sys/fs/cgroup", text) is mode


def test_detect_nothing_mounted() -> None:
    """No cgroup filesystem under the root is Unsupported, not a guess."""
    with pytest.raises(Unsupported):
        detect("/sys/fs/cgroup", "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw")


@pytest.mark.parametrize("path,cid,inner", [
    ("/dockyard/abc", "abc", "/dockyard/abc"),
    ("/a//b/../c/", "x", "/a/c"),
    ("dockyard/abc", "abc", "dockyard/abc"),
    ("../../escape", "x", "escape"),
    (None, "abc", "abc"),
    ("", "abc", "abc"),
])
def test_inner_path(path: str | None, cid: str, inner: str) -> None:
    """cgroupsPath is cleaned; relative paths cannot climb with '..'."""
    assert inner_path(path, cid) == inner


@pytest.mark.parametrize("path", ["/", "//", ".", "..", "a/../.."])
def test_path_naming_no_cgroup_of_its_own_is_refused(path: str) -> None:
    """A path that would make a root or our own cgroup the container's is an InvalidSpec."""
    with pytest.raises(InvalidSpec) as info:
        inner_path(path, "abc")
    assert info.value.field == "linux.cgroupsPath"


def test_systemd_path_is_unsupported() -> None:
    """slice:prefix:name is the systemd driver's syntax and is refused."""
    with pytest.raises(Unsupported) as info:
        inner_path("system.slice:docker:abc", "abc")
    assert "systemd" in str(info.value)


@pytest.mark.parametrize("inner,own,root,rel", [
    ("/x/y", "/ignored", "/", "x/y"),
    ("y", "/own", "/", "own/y"),
    ("y", "/", "/", "y"),
    ("/ns/x", "/", "/ns", "x"),
])
def test_place(inner: str, own: str, root: str, rel: str) -> None:
    """Absolute paths start at the hierarchy root, relative ones at our own cgroup."""
    assert place(inner, own, root) == rel


def test_own_cgroups() -> None:
    """Each controller of a joint hierarchy maps to the same path."""
    assert own_cgroups("4:memory:/a\n2:cpu,cpuacct:/b\n1:name=systemd:/c\n0::/d\n") == {
        "memory": "/a", "cpu": "/b", "cpuacct": "/b", "name=systemd": "/c", "": "/d"}


# --- the manager over a fake tree ----------------------------------------------

FILES = {
    "cpu": ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.cfs_burst_us", "cpu.idle", "cpu.stat"],
    "cpuacct": ["cpuacct.usage", "cpuacct.usage_percpu", "cpuacct.stat"],
    "cpuset": ["cpuset.cpus", "cpuset.mems"],
    "memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes",
               "memory.usage_in_bytes", "memory.oom_control", "memory.swappiness", "memory.stat"],
    "devices": ["devices.allow", "devices.deny", "devices.list"],
    "freezer": ["freezer.state"],
    "blkio": ["blkio.bfq.weight", "blkio.throttle.read_bps_device"],
    "pids": ["pids.max", "pids.current"],
    "systemd": [],
    "unified": ["cgroup.controllers", "cgroup.subtree_control", "hugetlb.2MB.max"],
}


class FakeV1:
    """A v1 cgroupfs in a directory: mkdir fills in a hierarchy's control
    files as the kernel would, rmdir refuses a dir with processes (EBUSY) and
    drops the files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.waits = 0
        for name in FILES:
            (root / name).mkdir(parents=True)
            self._populate(root / name, name)
        (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
        (root / "cpuset" / "cpuset.mems").write_text("0\n")
        (root / "freezer" / "freezer.state").write_text("THAWED\n")
        (root / "unified" / "cgroup.controllers").write_text("hugetlb\n")
        self.mountinfo = "\n".join(
            f"{30 + i} 23 0:{40 + i} / {root / name} rw - "
            + ("cgroup2 cgroup2 rw" if name == "unified" else
               f"cgroup cgroup rw,{'name=systemd' if name == 'systemd' else name}")
            for i, name in enumerate(FILES))

    def _populate(self, d: Path, hierarchy: str) -> None:
        for f in ["cgroup.procs", *([] if hierarchy == "unified" else ["tasks"]), *FILES[hierarchy]]:
            (d / f).touch()

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        hierarchy = Path(path).relative_to(self.root).parts[0]
        self._populate(Path(path), hierarchy)
        if hierarchy == "freezer":
            (Path(path) / "freezer.state").write_text("THAWED\n")

    def rmdir(self, path: str) -> None:
        if (Path(path) / "cgroup.procs").exists() and (Path(path) / "cgroup.procs").read_text().strip():
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        if any(f.is_dir() for f in Path(path).iterdir()):  # the kernel refuses a cgroup with children
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        for f in Path(path).iterdir():
            if f.is_file():
                f.unlink()
        os.rmdir(path)

    def wait(self, _seconds: float) -> None:
        self.waits += 1

    def manager(self, path: str | None = "/dy/c1", **kw: Any) -> V1Manager:
        mgr = new_manager(path, "c1", root=str(self.root), mountinfo_text=self.mountinfo,
                          proc_cgroup_text=kw.pop("proc", "0::/\n"), wait=self.wait,
                          mkdir=self.mkdir, rmdir=self.rmdir, **kw)
        assert isinstance(mgr, V1Manager)
        return mgr


@pytest.fixture
def fake(tmp_path: Path) -> FakeV1:
    return FakeV1(tmp_path / "cgroup")


def test_paths_absolute(fake: FakeV1) -> None:
    """An absolute cgroupsPath lands at the same place in every hierarchy,
    plus the cgroup2 side of a hybrid host under ''."""
    paths = fake.manager("/dy/c1").paths()
    assert paths["memory"] == f"{fake.root}/memory/dy/c1"
    assert paths["name=systemd"] == f"{fake.root}/systemd/dy/c1"
    assert paths[""] == f"{fake.root}/unified/dy/c1"
    assert detect(str(fake.root), fake.mountinfo) is Mode.HYBRID


def test_paths_relative_to_own_cgroup(fake: FakeV1) -> None:
    """A relative path (and no path: the id) hangs off our own v1 cgroup."""
    proc = "4:memory:/runtime\n1:cpu:/\n0::/user/session\n"
    mgr = fake.manager(None, proc=proc)
    assert mgr.paths()["memory"] == f"{fake.root}/memory/runtime/c1"
    assert mgr.paths()["cpu"] == f"{fake.root}/cpu/c1"
    assert mgr.paths()[""] == f"{fake.root}/unified/user/c1"


def test_create_copies_cpuset_from_parent(fake: FakeV1) -> None:
    """Every new cpuset level gets its parent's cpus and mems, so a task can join."""
    mgr = fake.manager("/dy/c1")
    mgr.create()
    for level in ("dy", "dy/c1"):
        assert (fake.root / "cpuset" / level / "cpuset.cpus").read_text() == "0-1"
        assert (fake.root / "cpuset" / level / "cpuset.mems").read_text() == "0"
    assert all(os.path.isdir(d) for d in mgr.paths().values())
    assert mgr.exists()


def test_apply_writes_files(fake: FakeV1) -> None:
    """apply puts each value in its hierarchy; BFQ is picked when blkio.weight is absent."""
    mgr = fake.manager()
    mgr.create()
    mgr.apply({"memory": {"limit": 1 << 20, "swap": 2 << 20}, "cpu": {"shares": 100, "cpus": "1"},
               "pids": {"limit": 5}, "blockIO": {"weight": 300},
               "devices": [{"allow": False}, {"allow": True, "type": "c", "major": 1, "minor": 3}]})
    d = mgr.paths()
    assert Path(d["memory"], "memory.limit_in_bytes").read_text() == str(1 << 20)
    assert Path(d["memory"], "memory.memsw.limit_in_bytes").read_text() == str(2 << 20)
    assert Path(d["cpu"], "cpu.shares").read_text() == "100"
    assert Path(d["cpuset"], "cpuset.cpus").read_text() == "1"
    assert Path(d["pids"], "pids.max").read_text() == "5"
    assert Path(d["blkio"], "blkio.bfq.weight").read_text() == "300"
    assert Path(d["devices"], "devices.allow").read_text() == "c 1:3 rwm"


def test_apply_validates_everything_before_writing(fake: FakeV1) -> None:
    """A bad field anywhere means no file is written at all."""
    mgr = fake.manager()
    mgr.create()
    with pytest.raises(InvalidSpec) as info:
        mgr.apply({"memory": {"limit": 4096}, "pids": {"limit": "lots"}})
    assert info.value.field == "linux.resources.pids.limit"
    assert Path(mgr.paths()["memory"], "memory.limit_in_bytes").read_text() == ""


@pytest.mark.parametrize("resources,field", [
    ({"network": {"classID": 1}}, "linux.resources.network"),
    ({"unified": {"memory.high": "1"}}, "linux.resources.unified"),
    ({"cpu": {"realtimeRuntime": 10}}, "linux.resources.cpu"),
    ({"rdma": {"mlx4_0": {"hcaHandles": 1}}}, "linux.resources.rdma"),
])
def test_apply_refuses_what_v1_here_cannot_do(fake: FakeV1, resources: dict[str, Any], field: str) -> None:
    """Unmounted controllers, a missing control file, unified on v1 and rdma
    are errors naming the field (cpu.rt_* files are absent in the fake)."""
    mgr = fake.manager()
    mgr.create()
    with pytest.raises((Unsupported, InvalidSpec)) as info:
        mgr.apply(resources)
    assert info.value.target == field


def test_apply_hugetlb_on_hybrid_goes_to_cgroup2(fake: FakeV1) -> None:
    """Without a v1 hugetlb hierarchy, the limit goes to the cgroup2 side,
    enabling hugetlb in the parents on demand."""
    mgr = fake.manager("/c1")
    mgr.create()
    mgr.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]})
    assert (fake.root / "unified" / "cgroup.subtree_control").read_text() == "+hugetlb"
    assert (fake.root / "unified" / "c1" / "hugetlb.2MB.max").read_text() == "2097152"


def test_apply_write_error_names_the_file(fake: FakeV1) -> None:
    """An OSError on write becomes SyscallError carrying the file and errno."""
    mgr = fake.manager()
    mgr.create()
    target = Path(mgr.paths()["pids"], "pids.max")
    target.unlink()
    target.mkdir()  # opening a directory for writing fails with EISDIR
    with pytest.raises(SyscallError) as info:
        mgr.apply({"pids": {"limit": 3}})
    assert info.value.target == str(target)
    assert info.value.errno == errno.EISDIR


def test_check_before_update(fake: FakeV1) -> None:
    """checkBeforeUpdate refuses a limit below the current usage."""
    mgr = fake.manager()
    mgr.create()
    Path(mgr.paths()["memory"], "memory.usage_in_bytes").write_text("10000\n")
    with pytest.raises(FailedPrecondition):
        mgr.apply({"memory": {"limit": 4096, "checkBeforeUpdate": True}})


def test_add_and_pids(fake: FakeV1) -> None:
    """add writes the pid in every hierarchy; pids() walks child cgroups too."""
    mgr = fake.manager()
    mgr.create()
    mgr.add(4242)
    for d in set(mgr.paths().values()):
        assert Path(d, "cgroup.procs").read_text() == "4242"
    child = Path(mgr.paths()["pids"], "sub")
    fake.mkdir(str(child))
    (child / "cgroup.procs").write_text("7\n8\n")
    assert mgr.pids() == [7, 8, 4242]


def test_join_self_and_add_rest_split_the_placement(fake: FakeV1) -> None:
    """join_self: "0" into every v1 hierarchy's tasks (the caller moves itself,
    no cgroup.procs); add_rest: the pid into the cgroup2 side only."""
    mgr = fake.manager()
    mgr.create()
    mgr.join_self()
    unified = mgr.paths()[""]
    v1_dirs = {d for c, d in mgr.paths().items() if c}
    assert len(v1_dirs) >= 2
    for d in v1_dirs:
        assert Path(d, "tasks").read_text() == "0"
        assert Path(d, "cgroup.procs").read_text() == ""
    assert not Path(unified, "tasks").exists() and Path(unified, "cgroup.procs").read_text() == ""
    mgr.add_rest(4242)
    assert Path(unified, "cgroup.procs").read_text() == "4242"
    for d in v1_dirs:
        assert Path(d, "cgroup.procs").read_text() == ""


def test_cgroup2_dir_is_the_hybrid_side_or_none(fake: FakeV1) -> None:
    """Where spawn can fork a child straight into (clone3): the unified dir
    on a hybrid host, nothing on a v1-only one."""
    assert fake.manager().cgroup2_dir() == f"{fake.root}/unified/dy/c1"
    v1_only = "\n".join(line for line in fake.mountinfo.splitlines() if " - cgroup2 " not in line)
    mgr = new_manager("/dy/c1", "c1", root=str(fake.root), mountinfo_text=v1_only, proc_cgroup_text="0::/\n")
    assert isinstance(mgr, V1Manager)
    assert mgr.cgroup2_dir() is None
    assert "" not in mgr.paths()


def test_freeze_thaw(fake: FakeV1) -> None:
    """freeze writes FROZEN and returns once freezer.state reads it back."""
    mgr = fake.manager()
    mgr.create()
    mgr.freeze()
    assert Path(mgr.paths()["freezer"], "freezer.state").read_text() == "FROZEN"
    assert mgr.is_frozen()
    mgr.thaw()
    assert not mgr.is_frozen()


def test_destroy_retries_busy_then_is_idempotent(fake: FakeV1) -> None:
    """destroy removes children first, waits out EBUSY, and a second call is a no-op."""
    mgr = fake.manager()
    mgr.create()
    fake.mkdir(mgr.paths()["memory"] + "/child")
    procs = Path(mgr.paths()["pids"], "cgroup.procs")
    procs.write_text("99\n")
    original_wait = fake.wait

    def reap(seconds: float) -> None:  # the process exits while we wait
        original_wait(seconds)
        procs.write_text("")

    mgr._wait = reap
    mgr.destroy()
    assert fake.waits >= 1
    assert not mgr.exists()
    assert not (fake.root / "memory" / "dy" / "c1").exists()
    mgr.destroy()


@pytest.mark.parametrize(("children", "calls"), [
    ((), ["c1"]),                                   # the usual leaf: one rmdir, no walk
    (("a", "a/b"), ["c1", "b", "a", "c1"]),         # refused, then leaves first
    (None, ["c1"]),                                 # already gone: success
])
def test_remove_tree_tries_the_leaf_first(tmp_path: Path, children: tuple[str, ...] | None,
                                          calls: list[str]) -> None:
    from dockyard.runtime.kernel.cgroupfs import files as cgroupfs

    top = tmp_path / "c1"
    if children is not None:
        top.mkdir()
        for child in children:
            (top / child).mkdir()
    seen: list[str] = []

    def rmdir(path: str) -> None:
        seen.append(os.path.basename(path))
        os.rmdir(path)  # like cgroupfs: a dir with children is refused

    cgroupfs.remove_tree(str(top), rmdir=rmdir, sleep=lambda _s: None)
    assert seen == calls
    assert not top.exists()


def test_destroy_gives_up_on_a_cgroup_that_stays_busy(fake: FakeV1) -> None:
    """A cgroup that never empties ends in SyscallError(EBUSY), after a bounded wait."""
    mgr = fake.manager()
    mgr.create()
    Path(mgr.paths()["pids"], "cgroup.procs").write_text("99\n")
    with pytest.raises(SyscallError) as info:
        mgr.destroy()
    assert info.value.errno == errno.EBUSY
    assert not Path(mgr.paths()["memory"]).exists()  # the others were still removed


def test_stats_shape(fake: FakeV1) -> None:
    """stats() reads counters into runc's events --stats shape."""
    mgr = fake.manager()
    mgr.create()
    d = mgr.paths()
    Path(d["cpuacct"], "cpuacct.usage").write_text("5000\n")
    Path(d["cpuacct"], "cpuacct.usage_percpu").write_text("3000 2000\n")
    Path(d["cpuacct"], "cpuacct.stat").write_text("user 3\nsystem 1\n")
    Path(d["cpu"], "cpu.stat").write_text("nr_periods 10\nnr_throttled 2\nthrottled_time 99\n")
    Path(d["memory"], "memory.usage_in_bytes").write_text("8192\n")
    Path(d["memory"], "memory.stat").write_text("cache 4096\nrss 4096\n")
    Path(d["pids"], "pids.current").write_text("3\n")
    Path(d["pids"], "pids.max").write_text("max\n")
    s = mgr.stats()
    assert s["cpu"]["usage"] == {"total": 5000, "percpu": [3000, 2000], "user": 30_000_000, "kernel": 10_000_000}
    assert s["cpu"]["throttling"] == {"periods": 10, "throttledPeriods": 2, "throttledTime": 99}
    assert s["memory"]["usage"]["usage"] == 8192 and s["memory"]["cache"] == 4096
    assert s["memory"]["raw"] == {"cache": 4096, "rss": 4096}
    assert s["pids"] == {"current": 3, "limit": (1 << 64) - 1}
    assert set(s) == {"cpu", "memory", "pids", "blkio", "hugetlb"}


def test_blkio_stats_parse() -> None:
    """blkio recursive files become {major, minor, op, value} entries; Total is dropped."""
    files = {("blkio", "blkio.throttle.io_service_bytes_recursive"): "8:0 Read 10\n8:0 Write 20\nTotal 30\n"}
    got = v1_stats.blkio(lambda c, f: files.get((c, f)))
    assert got["ioServiceBytesRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 10}, {"major": 8, "minor": 0, "op": "Write", "value": 20}]


def test_with_default_devices_appends_runc_rules_and_spec_nodes() -> None:
    """Spec rules come first, then runc's defaults, then an allow per linux.devices node."""
    from dockyard.runtime.cgroups import RUNC_DEFAULT_RULES, with_default_devices

    resources = {"devices": [{"allow": False, "access": "rwm"}], "pids": {"limit": 3}}
    full = with_default_devices(resources, [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
        {"path": "/dev/ttyX", "type": "u", "major": 4, "minor": 64},
        {"path": "/dev/sdz", "type": "b", "major": 8, "minor": 0},
        {"path": "/dev/fifo", "type": "p"},
    ])
    lines = devices.writes(full)
    assert lines[:2] == [("devices.deny", "a"), ("devices.deny", "a")]
    assert ("devices.allow", "c 1:3 rwm") in lines and ("devices.allow", "c *:* m") in lines
    assert lines[-3:] == [("devices.allow", "c 10:229 rwm"), ("devices.allow", "c 4:64 rwm"),
                          ("devices.allow", "b 8:0 rwm")]
    assert len(lines) == 2 + len(RUNC_DEFAULT_RULES) + 3
    assert resources["devices"] == [{"allow": False, "access": "rwm"}]  # input untouched
    assert full["pids"] == {"limit": 3}


def test_with_default_devices_names_a_bad_node() -> None:
    """A linux.devices entry of unknown type is an InvalidSpec naming it."""
    from dockyard.runtime.cgroups import with_default_devices

    with pytest.raises(InvalidSpec) as info:
        with_default_devices({}, [{"type": "x", "major": 1, "minor": 1}])
    assert info.value.field == "linux.devices[0].type"
