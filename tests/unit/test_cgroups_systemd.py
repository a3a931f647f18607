"""The systemd cgroup driver's pure parts: slice:prefix:name -> unit and cgroup,
planned v2 writes -> unit properties, and the manager's order of calls over a
fake systemd and a fake cgroup2 tree (no root, no bus).  The real systemd is
tests/guest/test_systemd_cgroup.py's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_cgroups_v2 import FakeV2

from dockyard.runtime.cgroups import new_manager, restore_manager
from dockyard.runtime.cgroups.manager import Write
from dockyard.runtime.cgroups.restore import is_frozen
from dockyard.runtime.cgroups.systemd import properties
from dockyard.runtime.cgroups.systemd.manager import SystemdManager
from dockyard.runtime.kernel.cgroupfs import systemd_path
from dockyard.runtime.kernel.cgroupfs.locate import locate
from dockyard.runtime.kernel.errors import AlreadyExists, InvalidSpec, Unsupported

UINT64_MAX = (1 << 64) - 1


@pytest.mark.parametrize(("path", "slice_name", "unit", "cgroup"), [
    ("system.slice:dockyard:abc", "system.slice", "dockyard-abc.scope", "/system.slice/dockyard-abc.scope"),
    ("kubepods-besteffort-pod12.slice:cri-containerd:c1", "kubepods-besteffort-pod12.slice",
     "cri-containerd-c1.scope", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/"
                                "cri-containerd-c1.scope"),
    (":dockyard:abc", "system.slice", "dockyard-abc.scope", "/system.slice/dockyard-abc.scope"),
    ("-.slice::abc", "-.slice", "abc.scope", "/abc.scope"),
    ("", "system.slice", "dockyard-ID.scope", "/system.slice/dockyard-ID.scope"),
    (None, "system.slice", "dockyard-ID.scope", "/system.slice/dockyard-ID.scope"),
])
def test_parse(path: str | None, slice_name: str, unit: str, cgroup: str) -> None:
    """runc's rules: the scope <prefix>-<name>.scope in the slice, nested by its name's dashes."""
    place = systemd_path.parse(path, "ID")
    assert (place.slice, place.unit, place.path) == (slice_name, unit, cgroup)


@pytest.mark.parametrize(("path", "words"), [
    ("/dockyard/abc", "slice:prefix:name"),
    ("a:b:c:d", "slice:prefix:name"),
    ("system.slice:dockyard:", "names no unit"),
    ("system.slice:p:x.slice", "slice unit"),
    ("system.slice:p:a/b", "not a valid systemd unit name"),
    ("system.slice:p:a@b", "not a valid systemd unit name"),
    ("system.slice:p:" + "x" * 300, "not a valid systemd unit name"),
    ("kube--pod.slice:p:c", "empty '-' component"),
    ("-kube.slice:p:c", "empty '-' component"),
    ("kubepods:p:c", "not a slice name"),
    ("a/b.slice:p:c", "not a valid systemd unit name"),
])
def test_bad_paths_name_the_field(path: str, words: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        systemd_path.parse(path, "ID")
    assert info.value.field == "linux.cgroupsPath" and words in str(info.value), str(info.value)


@pytest.mark.parametrize(("parent", "pod", "expanded"), [
    ("dockyard.slice", "dockyard-podabc.slice", "/dockyard.slice/dockyard-podabc.slice"),
    ("kubepods-burstable.slice", "kubepods-burstable-podabc.slice",
     "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podabc.slice"),
    ("-.slice", "podabc.slice", "/podabc.slice"),
])
def test_pod_slice(parent: str, pod: str, expanded: str) -> None:
    assert systemd_path.pod_slice(parent, "abc") == pod
    assert systemd_path.slice_dir(pod) == expanded


def test_slice_dir_keeps_paths() -> None:
    """kubelet's systemd driver sends the whole path; cgroupfs parents are paths too."""
    assert systemd_path.slice_dir("/kubepods.slice/kubepods-pod1.slice") == "/kubepods.slice/kubepods-pod1.slice"
    assert systemd_path.slice_dir("/dockyard/pod-1") == "/dockyard/pod-1"


def test_locate_systemd_needs_v2(tmp_path: Path) -> None:
    fake = FakeV2(tmp_path / "cg")
    where = locate("kubepods-pod1.slice:dy:c1", "c1", root=str(fake.root), mountinfo_text=fake.mountinfo,
                   systemd=True)
    assert where.v2_path == f"{fake.root}/kubepods.slice/kubepods-pod1.slice/dy-c1.scope"
    hybrid = "30 23 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    with pytest.raises(Unsupported) as info:
        locate("system.slice:dy:c1", "c1", root="/sys/fs/cgroup", mountinfo_text=hybrid, systemd=True)
    assert "cgroup v2" in str(info.value)


def test_colon_path_without_the_driver_points_to_it(tmp_path: Path) -> None:
    fake = FakeV2(tmp_path / "cg")
    with pytest.raises(Unsupported) as info:
        locate("system.slice:dy:c1", "c1", root=str(fake.root), mountinfo_text=fake.mountinfo)
    assert "--systemd-cgroup" in str(info.value)


def W(file: str, value: str) -> Write:
    return Write("/cg", file, value, "linux.resources")


@pytest.mark.parametrize(("plan", "version", "props", "changed"), [
    ([W("memory.max", "1048576"), W("memory.swap.max", "max"), W("memory.low", "100")], 252,
     [("MemoryMax", ("t", 1048576)), ("MemorySwapMax", ("t", UINT64_MAX)), ("MemoryLow", ("t", 100))], {}),
    ([W("cpu.weight", "39"), W("cpu.max", "50000 100000")], 252,
     [("CPUWeight", ("t", 39)), ("CPUQuotaPeriodUSec", ("t", 100000)), ("CPUQuotaPerSecUSec", ("t", 500000))], {}),
    # 12345/100000 of a CPU is 123450 us/s: systemd keeps 130000, and the file must say 13000
    ([W("cpu.max", "12345 100000")], 252,
     [("CPUQuotaPeriodUSec", ("t", 100000)), ("CPUQuotaPerSecUSec", ("t", 130000))], {"cpu.max": "13000 100000"}),
    ([W("cpu.max", "max 50000")], 241, [("CPUQuotaPerSecUSec", ("t", UINT64_MAX))], {}),
    ([W("cpu.max", "20000")], 252, [("CPUQuotaPerSecUSec", ("t", 200000))], {}),
    ([W("pids.max", "0"), W("pids.max", "max"), W("pids.max", "7")], 252,
     [("TasksMax", ("t", 1)), ("TasksMax", ("t", UINT64_MAX)), ("TasksMax", ("t", 7))], {}),
    ([W("cpuset.cpus", "0-2,9"), W("cpuset.mems", "0")], 252,
     [("AllowedCPUs", ("ay", b"\x07\x02")), ("AllowedMemoryNodes", ("ay", b"\x01"))], {}),
    ([W("cpuset.cpus", "0")], 243, [], {}),
    ([W("io.weight", "default 500"), W("io.weight", "8:0 100"), W("io.max", "8:0 rbps=1"),
      W("hugetlb.2MB.max", "0"), W("memory.oom.group", "1")], 252, [("IOWeight", ("t", 500))], {}),
])
def test_convert(plan: list[Write], version: int, props: list[Any], changed: dict[str, str]) -> None:
    """Each planned file systemd has a property for becomes that property; the rest stay file writes."""
    assert properties.convert(plan, version) == (props, changed)


class FakeBus:
    """systemd as the manager sees it: records calls, makes the scope's cgroup on start."""

    def __init__(self, fake: FakeV2, exists: set[str] | None = None) -> None:
        self.fake = fake
        self.calls: list[tuple[str, Any]] = []
        self.exists = exists or set()
        self.made: dict[str, Path] = {}

    def __enter__(self) -> FakeBus:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def version(self) -> int:
        return 252

    def start_transient_unit(self, unit: str, props: list[Any]) -> None:
        self.calls.append(("start", (unit, dict(props))))
        if unit in self.exists:
            raise AlreadyExists("start systemd unit", unit, "a systemd unit of that name exists already")
        slice_name = dict(props)["Slice"][1]
        parent = self.fake.root / systemd_path.expand_slice(slice_name).lstrip("/")
        for d in [*reversed(parent.relative_to(self.fake.root).parents), parent.relative_to(self.fake.root)]:
            level = self.fake.root / d
            (level.parent / "cgroup.subtree_control").write_text("+cpuset +cpu +io +memory +pids")
            if not level.exists():
                self.fake.mkdir(str(level))
        (parent / "cgroup.subtree_control").write_text("+cpuset +cpu +io +memory +pids")
        self.fake.mkdir(str(parent / unit))
        self.made[unit] = parent / unit

    def set_unit_properties(self, unit: str, props: list[Any]) -> None:
        self.calls.append(("set", (unit, dict(props))))

    def stop_unit(self, unit: str) -> bool:
        self.calls.append(("stop", unit))
        self.fake.rmdir(str(self.made.pop(unit)))  # systemd removes a stopped scope's cgroup
        return True


def systemd_manager(fake: FakeV2, bus: FakeBus, monkeypatch: pytest.MonkeyPatch,
                    path: str = "pod1.slice:dy:c1") -> SystemdManager:
    mgr = new_manager(path, "c1", root=str(fake.root), mountinfo_text=fake.mountinfo, wait=fake.wait,
                      systemd=True)
    assert isinstance(mgr, SystemdManager)
    monkeypatch.setattr(mgr, "_bus", lambda: bus)
    return mgr


def test_scope_started_with_the_pid_then_files_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """apply before the scope exists only keeps the resources; add(pid) starts the
    scope with the pid, delegation and the properties, then writes every file."""
    fake = FakeV2(tmp_path / "cg")
    bus = FakeBus(fake)
    mgr = systemd_manager(fake, bus, monkeypatch)
    assert mgr.placed_by_parent and mgr.cgroup2_dir() is None
    mgr.apply({"memory": {"limit": 1 << 20}, "cpu": {"quota": 12345, "period": 100000}, "pids": {"limit": 9}})
    assert bus.calls == []
    mgr.add(4242)
    (kind, (unit, props)), = bus.calls
    assert (kind, unit) == ("start", "dy-c1.scope")
    assert props["PIDs"] == ("au", [4242]) and props["Delegate"] == ("b", True)
    assert props["Slice"] == ("s", "pod1.slice") and props["DefaultDependencies"] == ("b", False)
    assert props["MemoryMax"] == ("t", 1 << 20) and props["TasksMax"] == ("t", 9)
    d = fake.root / "pod1.slice" / "dy-c1.scope"
    assert mgr.cgroup2_dir() == str(d) and not mgr.placed_by_parent
    assert (d / "memory.max").read_text() == str(1 << 20)
    assert (d / "cpu.max").read_text() == "13000 100000"  # as systemd rounded it
    assert (d / "pids.max").read_text() == "9"
    desc = mgr.describe()
    assert desc["layout"] == "systemd" and desc["unit"] == "dy-c1.scope"
    again = restore_manager(desc)
    assert isinstance(again, SystemdManager) and again.cgroup2_dir() == str(d)
    assert not is_frozen(desc)
    monkeypatch.setattr(again, "_bus", lambda: bus)
    again.apply({"pids": {"limit": 5}})
    assert bus.calls[-1] == ("set", ("dy-c1.scope", {"TasksMax": ("t", 5)}))
    assert (d / "pids.max").read_text() == "5"
    again.destroy()
    assert bus.calls[-1] == ("stop", "dy-c1.scope")


def test_bad_values_refused_before_any_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeV2(tmp_path / "cg")
    bus = FakeBus(fake)
    mgr = systemd_manager(fake, bus, monkeypatch)
    with pytest.raises(InvalidSpec) as info:
        mgr.apply({"pids": {"limit": "many"}})
    assert info.value.field.startswith("linux.resources.pids")
    assert bus.calls == []


def test_existing_unit_is_not_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that is taken is AlreadyExists, and the rollback's destroy()
    must not stop the unit that holds it."""
    fake = FakeV2(tmp_path / "cg")
    bus = FakeBus(fake, exists={"dy-c1.scope"})
    mgr = systemd_manager(fake, bus, monkeypatch)
    mgr.apply({})
    with pytest.raises(AlreadyExists) as info:
        mgr.add(4242)
    assert "dy-c1.scope" in str(info.value)
    mgr.destroy()
    assert [c[0] for c in bus.calls] == ["start"]


@pytest.mark.parametrize("desc", [
    {"layout": "systemd", "path": "/sys/fs/cgroup/x.scope", "root": "/sys/fs/cgroup", "unit": "", "slice": "s",
     "id": "c"},
    {"layout": "systemd", "path": "/sys/fs/cgroup/x.scope", "root": "/sys/fs/cgroup", "unit": "a/b", "slice": "s",
     "id": "c"},
    {"layout": "systemd", "path": "relative", "root": "/sys/fs/cgroup", "unit": "u", "slice": "s", "id": "c"},
])
def test_restore_checks_the_record(desc: dict[str, Any]) -> None:
    with pytest.raises(InvalidSpec):
        restore_manager(desc)
