"""cgroup v2: linux.resources -> file writes, and the v2 manager over a fake
unified hierarchy in tmp_path (no root, no kernel)."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime.cgroups import Mode, V2Manager, new_manager
from dockyard.runtime.cgroups.device_rules import DeviceRule
from dockyard.runtime.cgroups.device_rules import parse as parse_devices
from dockyard.runtime.cgroups.v2 import cpu, cpuset, devices, hugetlb, io, memory, pids, unified
from dockyard.runtime.cgroups.v2 import device_program as v2_device_program
from dockyard.runtime.kernel.cgroupfs import stats_v2 as v2_stats
from dockyard.runtime.kernel.errors import InvalidSpec, SyscallError, Unsupported

Writer = Callable[[dict[str, Any]], list[tuple[str, str]]]

WRITES: list[tuple[str, Writer, dict[str, Any], list[tuple[str, str]]]] = [
    ("memory.limit", memory.writes, {"memory": {"limit": 1048576}}, [("memory.max", "1048576")]),
    ("memory.limit -1 also lifts swap", memory.writes, {"memory": {"limit": -1}},
     [("memory.swap.max", "max"), ("memory.max", "max")]),
    ("memory.swap is memory+swap", memory.writes, {"memory": {"limit": 100, "swap": 300}},
     [("memory.swap.max", "200"), ("memory.max", "100")]),
    ("memory.swap == limit: no swap", memory.writes, {"memory": {"limit": 100, "swap": 100}},
     [("memory.swap.max", "0"), ("memory.max", "100")]),
    ("memory.swap -1", memory.writes, {"memory": {"limit": 100, "swap": -1}},
     [("memory.swap.max", "max"), ("memory.max", "100")]),
    ("memory.reservation", memory.writes, {"memory": {"reservation": 4096}}, [("memory.low", "4096")]),
    ("memory v1-only fields write nothing", memory.writes,
     {"memory": {"kernel": 1, "kernelTCP": 1, "swappiness": 10, "disableOOMKiller": True}}, []),
    ("cpu.shares -> weight (1024 -> 39)", cpu.writes, {"cpu": {"shares": 1024}}, [("cpu.weight", "39")]),
    ("cpu.shares min -> 1", cpu.writes, {"cpu": {"shares": 2}}, [("cpu.weight", "1")]),
    ("cpu.shares max -> 10000", cpu.writes, {"cpu": {"shares": 262144}}, [("cpu.weight", "10000")]),
    ("cpu.shares below range clamps", cpu.writes, {"cpu": {"shares": 1}}, [("cpu.weight", "1")]),
    ("cpu.quota+period", cpu.writes, {"cpu": {"quota": 50000, "period": 100000}},
     [("cpu.max", "50000 100000")]),
    ("cpu.quota alone", cpu.writes, {"cpu": {"quota": 20000}}, [("cpu.max", "20000")]),
    ("cpu.quota -1", cpu.writes, {"cpu": {"quota": -1}}, [("cpu.max", "max")]),
    ("cpu.period alone", cpu.writes, {"cpu": {"period": 50000}}, [("cpu.max", "max 50000")]),
    ("cpu.burst", cpu.writes, {"cpu": {"quota": 20000, "burst": 500}},
     [("cpu.max", "20000"), ("cpu.max.burst", "500")]),
    ("cpu.idle", cpu.writes, {"cpu": {"idle": 1, "shares": 1024}}, [("cpu.weight", "39"), ("cpu.idle", "1")]),
    ("cpuset", cpuset.writes, {"cpu": {"cpus": "0,1", "mems": "0-1"}},
     [("cpuset.cpus", "0,1"), ("cpuset.mems", "0-1")]),
    ("pids.limit", pids.writes, {"pids": {"limit": 64}}, [("pids.max", "64")]),
    ("pids.limit 0", pids.writes, {"pids": {"limit": 0}}, [("pids.max", "max")]),
    ("io.weight converted", io.writes, {"blockIO": {"weight": 500}}, [("io.weight", "default 4950")]),
    ("io.weight range ends", io.writes, {"blockIO": {"weight": 10, "weightDevice": [
        {"major": 8, "minor": 0, "weight": 1000}]}}, [("io.weight", "default 1"), ("io.weight", "8:0 10000")]),
    ("io.max throttles, 0 is max", io.writes, {"blockIO": {
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 0}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 20}]}},
     [("io.max", "8:0 rbps=1000"), ("io.max", "8:0 wbps=max"), ("io.max", "8:0 riops=10"),
      ("io.max", "8:0 wiops=20")]),
    ("hugetlb", hugetlb.writes, {"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]},
     [("hugetlb.2MB.max", "4194304")]),
    ("devices allow-all list", devices.writes, {"devices": [{"allow": True, "access": "rwm"}]}, []),
    ("unified", unified.writes, {"unified": {"memory.high": "1048576", "io.latency": "8:0 target=10"}},
     [("memory.high", "1048576"), ("io.latency", "8:0 target=10")]),
]


@pytest.mark.parametrize("writer,resources,expected", [c[1:] for c in WRITES], ids=[c[0] for c in WRITES])
def test_writes(writer: Writer, resources: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    """Each resource field becomes exactly these v2 writes, in this order."""
    assert writer(resources) == expected


def test_bfq_weights_keep_v1_range() -> None:
    """With BFQ, weights go to io.bfq.weight unconverted."""
    res = {"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}]}}
    assert io.writes(res, bfq=True) == [("io.bfq.weight", "500"), ("io.bfq.weight", "8:0 200")]


def test_hugetlb_rsvd() -> None:
    """Where rsvd files exist the reservation limit is written too."""
    assert hugetlb.writes({"hugepageLimits": [{"pageSize": "1GB", "limit": 0}]}, rsvd=True) == [
        ("hugetlb.1GB.rsvd.max", "0"), ("hugetlb.1GB.max", "0")]


INVALID: list[tuple[Writer, dict[str, Any], str]] = [
    (memory.writes, {"memory": {"limit": "x"}}, "linux.resources.memory.limit"),
    (memory.writes, {"memory": {"swap": 100}}, "linux.resources.memory.swap"),
    (memory.writes, {"memory": {"limit": 200, "swap": 100}}, "linux.resources.memory.swap"),
    (memory.writes, {"memory": {"reservation": -3}}, "linux.resources.memory.reservation"),
    (memory.writes, {"memory": {"swappiness": -1}}, "linux.resources.memory.swappiness"),
    (cpu.writes, {"cpu": {"shares": "1024"}}, "linux.resources.cpu.shares"),
    (cpu.writes, {"cpu": {"quota": -2}}, "linux.resources.cpu.quota"),
    (cpu.writes, {"cpu": {"burst": 10}}, "linux.resources.cpu.burst"),
    (cpuset.writes, {"cpu": {"cpus": "a"}}, "linux.resources.cpu.cpus"),
    (pids.writes, {"pids": {"limit": 2.0}}, "linux.resources.pids.limit"),
    (io.writes, {"blockIO": {"weight": 2000}}, "linux.resources.blockIO.weight"),
    (io.writes, {"blockIO": {"throttleReadBpsDevice": [{"major": -1, "minor": 0, "rate": 1}]}},
     "linux.resources.blockIO.throttleReadBpsDevice[0].major"),
    (hugetlb.writes, {"hugepageLimits": [{"pageSize": 2, "limit": 1}]}, "linux.resources.hugepageLimits[0].pageSize"),
    (unified.writes, {"unified": {"../memory.max": "1"}}, "linux.resources.unified['../memory.max']"),
    (unified.writes, {"unified": {"a/memory.max": "1"}}, "linux.resources.unified['a/memory.max']"),
    (unified.writes, {"unified": {"memory": "1"}}, "linux.resources.unified['memory']"),
    (unified.writes, {"unified": {"cgroup.procs": "1"}}, "linux.resources.unified['cgroup.procs']"),
    (unified.writes, {"unified": {"memory.max": 1}}, "linux.resources.unified['memory.max']"),
    (unified.writes, {"unified": ["memory.max"]}, "linux.resources.unified"),
    (devices.writes, {"devices": [{"allow": "yes"}]}, "linux.resources.devices[0].allow"),
]


@pytest.mark.parametrize("writer,resources,field", INVALID)
def test_invalid_values_name_the_field(writer: Writer, resources: dict[str, Any], field: str) -> None:
    """A malformed value raises InvalidSpec whose field is the exact path."""
    with pytest.raises(InvalidSpec) as info:
        writer(resources)
    assert info.value.field == field


@pytest.mark.parametrize("key", ["realtimeRuntime", "realtimePeriod"])
def test_realtime_is_unsupported(key: str) -> None:
    """v2 has no RT group scheduling; the field is named."""
    with pytest.raises(Unsupported) as info:
        cpu.writes({"cpu": {key: 1000}})
    assert info.value.target == f"linux.resources.cpu.{key}"


DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_ALL = {"allow": True, "access": "rwm"}
NULL = {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}


@pytest.mark.parametrize("rules,honoured", [
    ([], True),
    ([NULL], True),
    ([ALLOW_ALL], True),
    ([DENY_ALL, ALLOW_ALL], True),
    ([DENY_ALL, ALLOW_ALL, NULL], True),
    ([DENY_ALL], False),
    ([DENY_ALL, NULL], False),
    ([ALLOW_ALL, {"allow": False, "type": "b", "major": 8, "access": "rwm"}], False),
    ([DENY_ALL, {"allow": True, "access": "rw"}], False),
])
def test_device_rules_v2_honoured_only_when_allow_all(rules: list[dict[str, Any]], honoured: bool) -> None:
    """Without eBPF only a net allow-everything list is what v2 enforces."""
    assert devices.honoured_without_bpf(parse_devices({"devices": rules})) is honoured


class FakeDeviceProgram:
    """Stands in for device_program.replace (bpf(2) needs root and a kernel): records, or fails with ``errno``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[DeviceRule]]] = []
        self.errno = 0

    def replace(self, cgroup_dir: str, rules: list[DeviceRule]) -> None:
        if self.errno:
            raise SyscallError("bpf prog load", "", self.errno)
        self.calls.append((cgroup_dir, rules))


@pytest.fixture(autouse=True)
def device_program(monkeypatch: pytest.MonkeyPatch) -> FakeDeviceProgram:
    fake = FakeDeviceProgram()
    monkeypatch.setattr(v2_device_program, "replace", fake.replace)
    return fake


def test_device_rules_v2_are_attached_as_a_program(device_program: FakeDeviceProgram) -> None:
    """The rules go to the cgroup's device program in spec order, and nothing is reported."""
    res = {"devices": [DENY_ALL, NULL]}
    assert devices.enforce("/sys/fs/cgroup/c1", res) == []
    assert device_program.calls == [("/sys/fs/cgroup/c1", parse_devices(res))]


@pytest.mark.parametrize("err", [errno.EPERM, errno.ENOSYS])
def test_device_rules_v2_without_bpf_refused_unless_caller_allows(device_program: FakeDeviceProgram, err: int) -> None:
    """Where bpf(2) is refused, the usual deny-all list is Unsupported naming
    linux.resources.devices, or, by explicit choice, reported as not enforced;
    an allow-everything list loses nothing and passes."""
    device_program.errno = err
    res = {"devices": [DENY_ALL, NULL]}
    with pytest.raises(Unsupported) as info:
        devices.enforce("/c1", res)
    assert info.value.target == "linux.resources.devices"
    assert [f for f, _ in devices.enforce("/c1", res, allow_unenforced=True)] == ["linux.resources.devices"]
    assert devices.enforce("/c1", {"devices": [DENY_ALL, ALLOW_ALL]}) == []


def test_device_program_failure_other_than_missing_bpf_is_raised(device_program: FakeDeviceProgram) -> None:
    """A verifier refusal or a bad fd is a fault, not an environment without bpf: it is raised as is."""
    device_program.errno = errno.EINVAL
    with pytest.raises(SyscallError):
        devices.enforce("/c1", {"devices": [DENY_ALL]}, allow_unenforced=True)


def test_ignored_v1_only_fields_are_reported() -> None:
    """Fields v2 cannot express are named with a reason."""
    notes = memory.ignored({"memory": {"kernel": 1, "swappiness": 5, "disableOOMKiller": True}})
    notes += io.ignored({"blockIO": {"leafWeight": 100}})
    assert [f for f, _ in notes] == ["linux.resources.memory.kernel", "linux.resources.memory.swappiness",
                                     "linux.resources.memory.disableOOMKiller", "linux.resources.blockIO.leafWeight"]


# --- the manager over a fake unified hierarchy ----------------------------------

# The files each controller gives a cgroup, as a real kernel has them: Debian's
# 6.1 in the test guest, recorded by hack/guest/record_v2_layout.py
# (tests/guest/test_layout_record.py checks the record against that kernel).
LAYOUT = json.loads((Path(__file__).parent / "data" / "cgroup_v2_layout.json").read_text())
CONTROLLER_FILES = {
    c: [f for f in LAYOUT["leaf_files"] if f.startswith(c + ".")]
    for c in ("cpu", "cpuset", "memory", "pids", "io", "hugetlb")
}


class FakeV2:
    """A cgroup2 tree in a directory: a new cgroup offers exactly what its
    parent enabled in cgroup.subtree_control, with those controllers' files;
    ``wait`` plays the kernel finishing a freeze by updating cgroup.events."""

    def __init__(self, root: Path, offered: str = "cpuset cpu io memory pids") -> None:
        self.root = root
        root.mkdir(parents=True)
        for f in ("cgroup.procs", "cgroup.subtree_control"):
            (root / f).touch()
        (root / "cgroup.controllers").write_text(offered + "\n")
        self.mountinfo = f"30 23 0:26 / {root} rw - cgroup2 cgroup2 rw,nsdelegate"
        self.freezes_finish = True
        self.waits = 0

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        d = Path(path)
        enabled = " ".join(
            c.lstrip("+") for c in (d.parent / "cgroup.subtree_control").read_text().split())
        (d / "cgroup.controllers").write_text(enabled)
        for f in ("cgroup.procs", "cgroup.subtree_control", "cgroup.freeze"):
            (d / f).touch()
        (d / "cgroup.events").write_text("populated 0\nfrozen 0\n")
        for c in enabled.split():
            for f in CONTROLLER_FILES.get(c, []):
                (d / f).touch()

    def rmdir(self, path: str) -> None:
        if (Path(path) / "cgroup.procs").read_text().strip():
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        if any(f.is_dir() for f in Path(path).iterdir()):  # the kernel refuses a cgroup with children
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        for f in Path(path).iterdir():
            if f.is_file():
                f.unlink()
        os.rmdir(path)

    def wait(self, _seconds: float) -> None:
        self.waits += 1
        if not self.freezes_finish:
            return
        for freeze in self.root.rglob("cgroup.freeze"):
            state = freeze.read_text().strip() or "0"
            (freeze.parent / "cgroup.events").write_text(f"populated 1\nfrozen {state}\n")

    def manager(self, path: str | None = "/dy/c1", proc: str = "0::/\n", **kw: Any) -> V2Manager:
        mgr = new_manager(path, "c1", root=str(self.root), mountinfo_text=self.mountinfo,
                          proc_cgroup_text=proc, wait=self.wait, mkdir=self.mkdir, rmdir=self.rmdir, **kw)
        assert isinstance(mgr, V2Manager)
        return mgr


@pytest.fixture
def fake(tmp_path: Path) -> FakeV2:
    return FakeV2(tmp_path / "cgroup")


def test_mode_and_paths(fake: FakeV2) -> None:
    """Absolute paths start at the root; relative ones at the parent of our own cgroup."""
    from dockyard.runtime.cgroups import detect

    assert detect(str(fake.root), fake.mountinfo) is Mode.V2
    assert fake.manager("/dy/c1").paths() == {"": f"{fake.root}/dy/c1"}
    assert fake.manager("pods/c1", proc="0::/system.slice/runtime.service\n").paths() == {
        "": f"{fake.root}/system.slice/pods/c1"}
    assert fake.manager(None, proc="0::/a/b\n").paths() == {"": f"{fake.root}/a/c1"}


def test_create_enables_controllers_top_down(fake: FakeV2) -> None:
    """Each level above the leaf enables what it offers, before the next level is made."""
    mgr = fake.manager("/dy/c1")
    mgr.create()
    assert (fake.root / "cgroup.subtree_control").read_text() == "+cpuset +cpu +io +memory +pids"
    assert (fake.root / "dy" / "cgroup.subtree_control").read_text() == "+cpuset +cpu +io +memory +pids"
    assert (fake.root / "dy" / "c1" / "cgroup.subtree_control").read_text() == ""
    assert (fake.root / "dy" / "c1" / "memory.max").exists()
    assert mgr.exists()


def test_apply_writes_files(fake: FakeV2) -> None:
    """apply writes converted values and unified entries last."""
    mgr = fake.manager()
    mgr.create()
    mgr.apply({"memory": {"limit": 100, "swap": 300}, "cpu": {"shares": 1024, "quota": 1000, "period": 10000},
               "pids": {"limit": 9}, "blockIO": {"weight": 10}, "unified": {"memory.max": "200"}})
    d = Path(mgr.paths()[""])
    assert (d / "memory.swap.max").read_text() == "200"
    assert (d / "memory.max").read_text() == "200"  # unified overrode limit
    assert (d / "cpu.weight").read_text() == "39"
    assert (d / "cpu.max").read_text() == "1000 10000"
    assert (d / "pids.max").read_text() == "9"
    assert (d / "io.weight").read_text() == "default 1"


@pytest.mark.parametrize("resources,field", [
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}, "linux.resources.hugepageLimits"),
    ({"unified": {"rdma.max": "x"}}, "linux.resources.unified['rdma.max']"),
    ({"rdma": {"mlx": {"hcaHandles": 1}}}, "linux.resources.rdma"),
])
def test_apply_refuses_what_this_cgroup_lacks(fake: FakeV2, resources: dict[str, Any], field: str) -> None:
    """A controller not offered and rdma are Unsupported naming the field,
    and nothing is written."""
    mgr = fake.manager()
    mgr.create()
    with pytest.raises(Unsupported) as info:
        mgr.apply({"pids": {"limit": 3}, **resources})
    assert info.value.target == field
    assert (Path(mgr.paths()[""]) / "pids.max").read_text() == ""


def test_controller_not_enabled_is_named_with_its_parent(fake: FakeV2) -> None:
    """A limit for a controller the parent did not enable names the controller and the parent's subtree_control."""
    mgr = fake.manager()
    mgr.create()
    with pytest.raises(Unsupported) as info:
        mgr.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]})
    assert info.value.target == "linux.resources.hugepageLimits"
    assert f"the hugetlb controller is not enabled for {fake.root}/dy/c1: {fake.root}/dy/cgroup.subtree_control" \
        in str(info.value)


def test_apply_attaches_the_device_program_before_any_write(fake: FakeV2, device_program: FakeDeviceProgram) -> None:
    """apply attaches the device rules' program to the container's cgroup first, then writes the files."""
    mgr = fake.manager()
    mgr.create()
    device_program.errno = errno.EPERM
    with pytest.raises(Unsupported):
        mgr.apply({"devices": [DENY_ALL, NULL], "pids": {"limit": 1}})
    assert (Path(mgr.paths()[""]) / "pids.max").read_text() == ""
    device_program.errno = 0
    mgr.apply({"devices": [DENY_ALL, NULL], "pids": {"limit": 1}})
    assert device_program.calls == [(mgr.paths()[""], parse_devices({"devices": [DENY_ALL, NULL]}))]
    assert (Path(mgr.paths()[""]) / "pids.max").read_text() == "1"


def test_apply_allow_unenforced_devices(fake: FakeV2, device_program: FakeDeviceProgram) -> None:
    """The explicit opt-in lets a deny-all device list through on v2 where bpf(2) is refused."""
    device_program.errno = errno.EPERM
    mgr = fake.manager(allow_unenforced_devices=True)
    mgr.create()
    mgr.apply({"devices": [DENY_ALL, NULL], "pids": {"limit": 1}})
    assert (Path(mgr.paths()[""]) / "pids.max").read_text() == "1"


def test_freeze_waits_for_events(fake: FakeV2) -> None:
    """freeze returns only after cgroup.events reports frozen 1; thaw after frozen 0."""
    mgr = fake.manager()
    mgr.create()
    mgr.freeze()
    assert fake.waits >= 1
    assert (Path(mgr.paths()[""]) / "cgroup.freeze").read_text() == "1"
    assert mgr.is_frozen()
    mgr.thaw()
    assert not mgr.is_frozen()


def test_freeze_that_never_finishes_is_undone(fake: FakeV2) -> None:
    """A freeze that times out is rolled back to thawed and raises ETIMEDOUT."""
    mgr = fake.manager()
    mgr.create()
    fake.freezes_finish = False
    with pytest.raises(SyscallError) as info:
        mgr.freeze()
    assert info.value.errno == errno.ETIMEDOUT
    assert (Path(mgr.paths()[""]) / "cgroup.freeze").read_text() == "0"


def test_join_self_leaves_the_whole_placement_to_add_rest(fake: FakeV2) -> None:
    """cgroup2 has no cheap self-move for a domain cgroup: join_self writes
    nothing, add_rest writes the pid to cgroup.procs."""
    mgr = fake.manager()
    mgr.create()
    procs = Path(mgr.paths()[""]) / "cgroup.procs"
    mgr.join_self()
    assert procs.read_text() == ""
    mgr.add_rest(11)
    assert procs.read_text() == "11"
    assert mgr.cgroup2_dir() == mgr.paths()[""]  # where spawn forks straight into


def test_add_pids_destroy(fake: FakeV2) -> None:
    """add/pids see nested cgroups; destroy removes leaf-first and is idempotent."""
    mgr = fake.manager()
    mgr.create()
    mgr.add(11)
    fake.mkdir(mgr.paths()[""] + "/nested")
    (Path(mgr.paths()[""]) / "nested" / "cgroup.procs").write_text("12\n")
    assert mgr.pids() == [11, 12]
    for f in Path(mgr.paths()[""]).rglob("cgroup.procs"):
        f.write_text("")
    mgr.destroy()
    assert not mgr.exists()
    assert (fake.root / "dy").is_dir()  # parents are left, as runc leaves them
    mgr.destroy()


def test_stats_shape() -> None:
    """v2 counters are converted to the v1-shaped runc stats (ns, mem+swap)."""
    files = {
        "cpu.stat": "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 3\nnr_throttled 1\nthrottled_usec 2\n",
        "memory.current": "1000\n", "memory.max": "max\n", "memory.swap.current": "24\n",
        "memory.swap.max": "max\n", "memory.stat": "file 300\nanon 700\n", "memory.events": "max 2\noom 1\n",
        "pids.current": "4\n", "pids.max": "10\n", "io.stat": "8:0 rbytes=5 wbytes=6 rios=1 wios=2 dbytes=0\n",
        "hugetlb.2MB.current": "0\n", "hugetlb.2MB.events": "max 1\n",
    }
    s = v2_stats.collect(files.get, ["2MB"])
    assert s["cpu"]["usage"] == {"total": 10000, "user": 6000, "kernel": 4000, "percpu": []}
    assert s["cpu"]["throttling"] == {"periods": 3, "throttledPeriods": 1, "throttledTime": 2000}
    assert s["memory"]["usage"] == {"limit": (1 << 64) - 1, "usage": 1000, "max": 0, "failcnt": 2}
    assert s["memory"]["swap"]["usage"] == 1024 and s["memory"]["cache"] == 300
    assert s["pids"] == {"current": 4, "limit": 10}
    assert s["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 5}, {"major": 8, "minor": 0, "op": "Write", "value": 6}]
    assert s["hugetlb"] == {"2MB": {"usage": 0, "max": 0, "failcnt": 1}}
