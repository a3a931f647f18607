"""Pod cgroups and container cgroupsPaths under both drivers (pure), and the
shim's --runtime-cgroup-driver reaching every runtime call."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.cri.pod_cgroup import cgroups_path, oom_kill_unexplained, pod_cgroup_parent, slice_oom_kills
from dockyard.shim.main import UsageError, parse


@pytest.mark.parametrize(("driver", "parent", "pod"), [
    ("cgroupfs", "/dockyard", "/dockyard/pod-p1"),
    ("cgroupfs", "/", "/pod-p1"),
    ("systemd", "dockyard.slice", "dockyard-podp1.slice"),
    ("systemd", "kubepods-besteffort.slice", "kubepods-besteffort-podp1.slice"),
])
def test_pod_cgroup_parent(driver: str, parent: str, pod: str) -> None:
    """The daemon's own pods: a pod-<id> dir (cgroupfs), or a slice nested by name under the parent slice."""
    assert pod_cgroup_parent(driver, parent, "p1") == pod


@pytest.mark.parametrize(("parent", "path"), [
    ("/dockyard/pod-p1", "/dockyard/pod-p1/c1"),
    ("/kubepods/besteffort/podu1", "/kubepods/besteffort/podu1/c1"),
    ("dockyard-podp1.slice", "dockyard-podp1.slice:dockyard:c1"),
    # kubelet's systemd driver sends the whole path of the pod's slice
    ("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podu1.slice",
     "kubepods-besteffort-podu1.slice:dockyard:c1"),
])
def test_cgroups_path_follows_the_parent(parent: str, path: str) -> None:
    """containerd's rule: a parent whose last element is a slice gets slice:prefix:name."""
    assert cgroups_path(parent, "c1") == path


def test_shim_takes_the_cgroup_driver() -> None:
    base = ["start", "--id", "p", "--state-dir", "/s", "--runtime", "runc", "--runtime-root", "/r"]
    assert parse([*base, "--runtime-cgroup-driver", "systemd"])[1]["runtime_cgroup_driver"] == "systemd"
    with pytest.raises(UsageError, match="cgroupfs or systemd"):
        parse([*base, "--runtime-cgroup-driver", "both"])


def test_runtime_calls_carry_systemd_cgroup(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dockyard.shim.oci_runtime import OciRuntime

    class Reaper:
        pass

    rt = OciRuntime("/usr/sbin/runc", str(tmp_path), Reaper(), str(tmp_path / "log"), "exec",  # type: ignore[arg-type]
                    systemd_cgroup=True)
    assert rt.global_flags == ["--systemd-cgroup"]
    assert OciRuntime("/usr/sbin/runc", str(tmp_path), Reaper(), str(tmp_path / "log"),  # type: ignore[arg-type]
                      "exec").global_flags == []


@pytest.mark.parametrize(("path", "files", "kills"), [
    ("dy-pod1.slice:dockyard:c1", {"dy.slice/dy-pod1.slice/memory.events": "oom 1\noom_kill 1\n"}, 1),
    ("dy-pod1.slice:dockyard:c1", {"dy.slice/dy-pod1.slice/memory.events": "oom 0\noom_kill 0\n"}, 0),
    ("dy-pod1.slice:dockyard:c1", {}, None),  # no such slice: nothing to say
    ("/dockyard/pod-1/c1", {"dockyard/pod-1/memory.events": "oom_kill 3\n"}, None),  # cgroupfs: the shim's job
    ("bad-.slice:dockyard:c1", {}, None),
])
def test_slice_oom_kills(tmp_path: Path, path: str, files: dict[str, str], kills: int | None) -> None:
    """The pod slice's hierarchical oom_kill count, read where systemd nests the slice."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert slice_oom_kills(path, str(tmp_path)) == kills


@pytest.mark.parametrize(("kills", "explained", "unexplained"), [
    (None, 0, False), (0, 0, False), (1, 0, True), (1, 1, False), (2, 1, True), (1, 2, False),
])
def test_oom_kill_unexplained(kills: int | None, explained: int, unexplained: bool) -> None:
    assert oom_kill_unexplained(kills, explained) is unexplained
