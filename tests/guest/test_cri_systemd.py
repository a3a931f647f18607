"""dockyardd with the systemd cgroup driver, driven by crictl in the guest.

kubelet's layout under systemd: the pod is a slice (here
``dyg<hex>-pod<id>.slice`` below the daemon's ``dyg<hex>.slice``, as
kubelet's pods are ``kubepods-*-pod<uid>.slice``), each container a
transient scope ``dockyard-<id>.scope`` in it that the runtime asked systemd
for, delegated.  RuntimeConfig says SYSTEMD, so a kubelet follows.  The
container's limits are in its scope's v2 files; ContainerStats and
ListPodSandboxStats are those files (checked against reading them in the
same test); an OOM-killed container is OOMKilled; removing the pod leaves
no unit and no cgroup.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cri_api.v1 import api_pb2
from daemon_fixture import Daemon
from guest_daemon import start_and_wait, systemd_daemon  # noqa: F401 (fixture)
from guest_env import CGROUP_ROOT, run
from runtime_service_fixture import container_config, pod_config

MiB = 1 << 20


def unit_props(unit: str, *names: str) -> dict[str, str]:
    done = run(["systemctl", "show", unit, *(f"--property={n}" for n in names)], check=True)
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def read_flat(path: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines())}


class Pod:
    def __init__(self, daemon: Daemon, tmp: Path, name: str) -> None:
        self.daemon = daemon
        self.tmp = tmp
        self.name = name
        self.config = tmp / f"pod-{name}.json"
        self.config.write_text(json.dumps(pod_config(name, tmp / "logs" / name)))
        self.id = daemon.crictl("runp", str(self.config)).stdout.strip()
        self.slice = f"{daemon.slice}"[:-len(".slice")] + f"-pod{self.id}.slice"  # type: ignore[attr-defined]

    @property
    def slice_dir(self) -> Path:
        parent = self.daemon.slice  # type: ignore[attr-defined]
        return CGROUP_ROOT / parent / self.slice

    def container(self, name: str, command: list[str], start: bool = True, **linux: Any) -> str:
        path = self.tmp / f"ctr-{self.name}-{name}.json"
        path.write_text(json.dumps(container_config(name, command, linux=linux)))
        cid = self.daemon.crictl("create", self.id, str(path), str(self.config)).stdout.strip()
        if start:
            self.daemon.crictl("start", cid)
        return cid

    def scope_dir(self, cid: str) -> Path:
        return self.slice_dir / f"dockyard-{cid}.scope"


LIMITS = {"resources": {"memory_limit_in_bytes": 64 * MiB, "cpu_period": 100000, "cpu_quota": 50000,
                        "cpu_shares": 512}}


def test_runtime_config_says_systemd(systemd_daemon: Daemon) -> None:  # noqa: F811
    """KEP-4033: kubelet reads the driver from RuntimeConfig and configures itself to match."""
    with systemd_daemon.channel() as ch:
        got = systemd_daemon.runtime(ch).RuntimeConfig(api_pb2.RuntimeConfigRequest())
    assert got.linux.cgroup_driver == api_pb2.SYSTEMD


def test_pod_slice_holds_two_container_scopes(systemd_daemon: Daemon, tmp_path: Path) -> None:  # noqa: F811
    """Each container (and the pause container) is a delegated scope in the
    pod's slice, with its limits as systemd properties and in its v2 files;
    removing the pod stops the slice and leaves no unit and no cgroup."""
    systemd_daemon.pull("busybox")
    pod = Pod(systemd_daemon, tmp_path, "two")
    first = pod.container("first", ["sleep", "1000"], **LIMITS)
    second = pod.container("second", ["sleep", "1000"], resources={"memory_limit_in_bytes": 32 * MiB})
    assert unit_props(pod.slice, "ActiveState")["ActiveState"] == "active"
    scopes = {p.name for p in pod.slice_dir.iterdir() if p.is_dir()}
    assert scopes == {f"dockyard-{pod.id}.scope", f"dockyard-{first}.scope", f"dockyard-{second}.scope"}, scopes
    props = unit_props(f"dockyard-{first}.scope", "ActiveState", "Slice", "Delegate", "MemoryMax",
                       "CPUQuotaPerSecUSec", "ControlGroup")
    assert props == {"ActiveState": "active", "Slice": pod.slice, "Delegate": "yes", "MemoryMax": str(64 * MiB),
                     "CPUQuotaPerSecUSec": "500ms",
                     "ControlGroup": "/" + str(pod.scope_dir(first).relative_to(CGROUP_ROOT))}, props
    d = pod.scope_dir(first)
    assert (d / "memory.max").read_text().strip() == str(64 * MiB)
    assert (d / "cpu.max").read_text().strip() == "50000 100000"
    assert (d / "cpu.weight").read_text().strip() == "20"
    assert (pod.scope_dir(second) / "memory.max").read_text().strip() == str(32 * MiB)
    # what the container itself sees, through its cgroup namespace
    inside = systemd_daemon.crictl("exec", "-s", first, "cat", "/sys/fs/cgroup/memory.max", "/proc/self/cgroup")
    assert inside.stdout.split() == [str(64 * MiB), "0::/"], inside.stdout
    systemd_daemon.crictl("rmp", "-f", pod.id)
    for unit in (f"dockyard-{first}.scope", f"dockyard-{second}.scope", f"dockyard-{pod.id}.scope"):
        assert unit_props(unit, "LoadState")["LoadState"] == "not-found", unit  # transient: gone once stopped
    # The slice was loaded from its name (implicitly): stopped, it stays
    # loaded until systemd's next garbage collection of units.
    assert unit_props(pod.slice, "ActiveState")["ActiveState"] == "inactive"
    assert not pod.slice_dir.exists()


def _stable(read: Any, call: Any, tries: int = 20) -> tuple[Any, Any]:
    """(files, rpc) with the files read unchanged before and after the RPC,
    so that the RPC's answer must equal them."""
    for _ in range(tries):
        before = read()
        answer = call()
        if read() == before:
            return before, answer
    pytest.fail("the cgroup files kept changing under 20 reads")


def test_stats_are_the_scope_files(systemd_daemon: Daemon, tmp_path: Path) -> None:  # noqa: F811
    """ContainerStats and ListPodSandboxStats report memory.current, memory.stat,
    cpu.stat and pids.current of the scope and the slice, as read here."""
    systemd_daemon.pull("busybox")
    pod = Pod(systemd_daemon, tmp_path, "stats")
    cid = pod.container("idle", ["sleep", "1000"], **LIMITS)
    scope = pod.scope_dir(cid)

    def container_files() -> tuple[int, int, int, int]:
        stat = read_flat(scope / "memory.stat")
        current = int((scope / "memory.current").read_text())
        return (current, max(0, current - stat["inactive_file"]), stat["anon"],
                read_flat(scope / "cpu.stat")["usage_usec"])

    with systemd_daemon.channel() as ch:
        rt = systemd_daemon.runtime(ch)
        files, got = _stable(container_files, lambda: rt.ContainerStats(
            api_pb2.ContainerStatsRequest(container_id=cid)).stats)
        current, working_set, anon, usage_usec = files
        assert got.memory.usage_bytes.value == current
        assert got.memory.working_set_bytes.value == working_set
        assert got.memory.rss_bytes.value == anon
        assert got.cpu.usage_core_nano_seconds.value == usage_usec * 1000

        slice_dir = pod.slice_dir

        def pod_files() -> tuple[int, int, int]:
            return (int((slice_dir / "memory.current").read_text()), read_flat(slice_dir / "cpu.stat")["usage_usec"],
                    int((slice_dir / "pids.current").read_text()))

        files, listed = _stable(pod_files, lambda: rt.ListPodSandboxStats(api_pb2.ListPodSandboxStatsRequest(
            filter=api_pb2.PodSandboxStatsFilter(id=pod.id))).stats)
        (stats,) = listed
        assert stats.attributes.id == pod.id
        assert stats.linux.memory.usage_bytes.value == files[0]
        assert stats.linux.cpu.usage_core_nano_seconds.value == files[1] * 1000
        assert stats.linux.process.process_count.value == files[2] == 2  # pause and sleep
        assert {c.attributes.id for c in stats.linux.containers} == {cid}
    systemd_daemon.crictl("rmp", "-f", pod.id)


def test_oom_killed_container(systemd_daemon: Daemon, tmp_path: Path) -> None:  # noqa: F811
    """A container whose init goes past memory.max is OOMKilled (exit 137);
    the scope is gone with it, and its cgroup too.  systemd 252 removes the
    scope's cgroup as soon as the init is dead, often before the shim reads
    its memory.events (2 of 3 runs in the guest); the pod slice's counter,
    which counts its scopes' kills, is then the daemon's answer."""
    systemd_daemon.pull("busybox")
    pod = Pod(systemd_daemon, tmp_path, "oom")
    cid = pod.container("hog", ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"], start=False,
                        resources={"memory_limit_in_bytes": 16 * MiB, "memory_swap_limit_in_bytes": 16 * MiB})
    with systemd_daemon.channel() as ch:
        events = systemd_daemon.runtime(ch).GetContainerEvents(api_pb2.GetEventsRequest(), timeout=300)
        systemd_daemon.crictl("start", cid)
        for event in events:  # the daemon's own event for the exit, not a poll
            if event.container_id == cid and event.container_event_type == api_pb2.CONTAINER_STOPPED_EVENT:
                break
        events.cancel()
    status = json.loads(systemd_daemon.crictl("inspect", cid).stdout)["status"]
    assert status["state"] == "CONTAINER_EXITED", status
    assert (status["exitCode"], status["reason"]) == (137, "OOMKilled"), status
    assert not pod.scope_dir(cid).exists()
    # The shim deleted it from the runtime at the exit, before the event: no runtime state is left.
    assert not (Path(systemd_daemon.config["state_dir"]) / "runtimes" / "dockyard-runc" / cid).exists()
    # What the daemon reads when the shim lost the race with systemd's removal of the scope.
    assert read_flat(pod.slice_dir / "memory.events")["oom_kill"] == 1
    systemd_daemon.crictl("rmp", "-f", pod.id)
    assert not pod.slice_dir.exists()


def test_restart_stops_an_orphan_pod_slice(systemd_daemon: Daemon) -> None:  # noqa: F811
    """A pod slice of this daemon's whose pod it does not know (a crash
    between the two) is stopped when the daemon starts (restart.py); one that
    still holds a process is kept, since stopping it would kill that."""
    parent = systemd_daemon.slice  # type: ignore[attr-defined]
    orphan = parent[:-len(".slice")] + f"-pod{'0' * 64}.slice"
    busy = parent[:-len(".slice")] + f"-pod{'1' * 64}.slice"
    run(["systemctl", "start", orphan], check=True)
    # systemd-run returns once the service's start job is done: its process is in the slice.
    run(["systemd-run", "--quiet", f"--unit=dyg-busy-{parent[3:-6]}", f"--slice={busy}", "sleep", "1000"], check=True)
    try:
        assert (CGROUP_ROOT / parent / orphan).is_dir()
        systemd_daemon.stop()
        start_and_wait(systemd_daemon)
        assert unit_props(orphan, "ActiveState")["ActiveState"] == "inactive"
        assert not (CGROUP_ROOT / parent / orphan).exists()
        assert unit_props(busy, "ActiveState")["ActiveState"] == "active"
        assert (CGROUP_ROOT / parent / busy).is_dir()
    finally:
        run(["systemctl", "stop", busy])

