"""dockyard-runc's cgroup v2 manager on a real v2 kernel, read back from inside the container.

Every controller of linux.resources is written and then read by the
container itself from its own /sys/fs/cgroup (a private cgroup namespace
makes that mount's root the container's cgroup), as crun's tests do. Then
the verbs that act on the cgroup later: pause/resume through cgroup.freeze,
update, events --stats from the v2 files, an OOM kill seen through
memory.events, and what a bad parent does to create.
"""

from __future__ import annotations

import json
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from guest_env import CGROUP_ROOT, remove_cgroup

from bundle import Bundle

MiB = 1 << 20


def scratch() -> str:
    """major:minor of the guest's scratch disk (hack/guest/run.py's null-co virtio disk)."""
    return Path("/sys/block/vda/dev").read_text().strip()


def read_inside(bundle: Bundle, files: list[str]) -> dict[str, str]:
    """Run the container and have it print each file of its own cgroup; lines joined by ';'."""
    script = "cd /sys/fs/cgroup && for f in " + " ".join(files) + "; do printf '%s=' $f; tr '\\n' ';' < $f; echo; done"
    out = bundle.run_ok(script)
    return dict(line.split("=", 1) for line in out.splitlines())


def every_controller(major_minor: str) -> dict[str, Any]:
    major, minor = (int(n) for n in major_minor.split(":"))
    return {
        "memory": {"limit": 64 * MiB, "reservation": 16 * MiB, "swap": 96 * MiB},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000, "cpus": "1", "mems": "0"},
        "pids": {"limit": 32},
        "blockIO": {
            "weight": 500,
            "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": MiB}],
            "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 1000}],
        },
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}],
        "unified": {"memory.oom.group": "1", "memory.high": str(48 * MiB)},
    }


def test_every_controller_is_written_and_read_back_inside(bundle: Bundle) -> None:
    """memory (with swap, oom.group), cpu (weight, max, burst), cpuset, io (weight, max), pids, hugetlb and unified."""
    dev = scratch()
    bundle.config["linux"]["resources"].update(every_controller(dev))
    seen = read_inside(bundle, [
        "memory.max", "memory.low", "memory.swap.max", "memory.high", "memory.oom.group",
        "cpu.weight", "cpu.max", "cpu.max.burst", "cpuset.cpus", "cpuset.mems", "cpuset.cpus.effective",
        "pids.max", "io.weight", "io.max", "hugetlb.2MB.max", "hugetlb.2MB.rsvd.max",
    ])
    assert seen == {
        "memory.max": f"{64 * MiB};",
        "memory.low": f"{16 * MiB};",
        "memory.swap.max": f"{32 * MiB};",  # OCI's swap is memory + swap; v2's file is swap alone
        "memory.high": f"{48 * MiB};",
        "memory.oom.group": "1;",
        "cpu.weight": "20;",  # runc's map of 512 shares
        "cpu.max": "50000 100000;",
        "cpu.max.burst": "1000;",
        "cpuset.cpus": "1;",
        "cpuset.mems": "0;",
        "cpuset.cpus.effective": "1;",
        "pids.max": "32;",
        "io.weight": "default 4950;",  # runc's map of blkio weight 500
        "io.max": f"{dev} rbps={MiB} wbps=max riops=max wiops=1000;",
        "hugetlb.2MB.max": f"{4 * MiB};",
        "hugetlb.2MB.rsvd.max": f"{4 * MiB};",
    }


def test_limits_hold_on_the_container_process(bundle: Bundle) -> None:
    """The kernel applies them to the container: its cpu affinity is the cpuset, and a fork past pids.max fails."""
    bundle.config["linux"]["resources"].update({"cpu": {"cpus": "1"}, "pids": {"limit": 3}})
    # sh and two sleeps fill pids.max=3: the third fork is refused, and
    # busybox sh gives up on a failed fork (exit 2; the sleeps die with the
    # container's pid namespace).
    bundle.sh("grep Cpus_allowed_list /proc/self/status; sleep 100 & sleep 100 & sleep 0 && echo third-forked")
    done = bundle.run()
    assert "Cpus_allowed_list:\t1" in done.stdout, done
    assert "can't fork: Resource temporarily unavailable" in done.stdout + done.stderr, done
    assert "third-forked" not in done.stdout


def test_private_cgroup_namespace(bundle: Bundle) -> None:
    """With a cgroup namespace the container sees itself at "/"; the host sees its real path."""
    pid = bundle.start_detached("exec sleep 1000")
    inside = bundle.invoke("exec", bundle.id, "cat", "/proc/self/cgroup")
    assert inside.stdout == "0::/\n", inside
    assert Path(f"/proc/{pid}/cgroup").read_text() == f"0::{bundle.cgroups_path}\n"
    mounts = bundle.invoke("exec", bundle.id, "grep", "cgroup2", "/proc/self/mountinfo").stdout.split()
    assert mounts[3:5] == ["/", "/sys/fs/cgroup"], mounts
    bundle.delete(force=True)


def test_without_cgroup_namespace_the_container_sees_its_path(bundle: Bundle) -> None:
    """Without one, /proc/self/cgroup names the real path and /sys/fs/cgroup is the container's own cgroup, bound."""
    bundle.config["linux"]["namespaces"] = [ns for ns in bundle.config["linux"]["namespaces"] if ns["type"] != "cgroup"]
    bundle.config["linux"]["resources"]["pids"] = {"limit": 7}
    out = bundle.run_ok("cat /proc/self/cgroup /sys/fs/cgroup/pids.max")
    assert out.splitlines() == [f"0::{bundle.cgroups_path}", "7"], out


def test_pause_and_resume_through_cgroup_freeze(bundle: Bundle) -> None:
    """pause writes cgroup.freeze and returns once cgroup.events says frozen; resume thaws."""
    bundle.start_detached("exec sleep 1000")
    cgroup = CGROUP_ROOT / bundle.cgroups_path.lstrip("/")
    assert bundle.invoke("pause", bundle.id).returncode == 0
    assert (cgroup / "cgroup.freeze").read_text() == "1\n"
    assert "frozen 1" in (cgroup / "cgroup.events").read_text()
    assert bundle.state()["status"] == "paused"
    assert bundle.invoke("resume", bundle.id).returncode == 0
    assert "frozen 0" in (cgroup / "cgroup.events").read_text()
    assert bundle.state()["status"] == "running"
    bundle.delete(force=True)


def test_update_changes_limits_seen_inside(bundle: Bundle) -> None:
    """update's flags and --resources change the v2 files, as the container reads them."""
    bundle.config["linux"]["resources"].update({"memory": {"limit": 64 * MiB}, "pids": {"limit": 32}})
    bundle.start_detached("exec sleep 1000")
    done = bundle.invoke("update", "--memory", str(32 * MiB), "--pids-limit", "16", "--cpu-quota", "20000",
                         "--cpu-period", "100000", "--cpu-share", "2048", bundle.id)
    assert done.returncode == 0, done.stderr
    resources = bundle.path / "resources.json"
    resources.write_text(json.dumps({"unified": {"memory.high": str(24 * MiB)}}))
    assert bundle.invoke("update", "--resources", str(resources), bundle.id).returncode == 0
    inside = bundle.invoke("exec", bundle.id, "cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max",
                           "/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu.weight", "/sys/fs/cgroup/memory.high")
    assert inside.stdout.split("\n")[:5] == [str(32 * MiB), "16", "20000 100000", "79", str(24 * MiB)], inside
    bundle.delete(force=True)


def test_events_stats_are_the_v2_files(bundle: Bundle) -> None:
    """events --stats reports what memory.max, memory.current, pids.*, cpu.stat and memory.events hold."""
    bundle.config["linux"]["resources"].update({"memory": {"limit": 64 * MiB}, "pids": {"limit": 32}})
    bundle.start_detached("exec sleep 1000")
    cgroup = CGROUP_ROOT / bundle.cgroups_path.lstrip("/")
    done = bundle.invoke("events", "--stats", bundle.id)
    assert done.returncode == 0, done.stderr
    event = json.loads(done.stdout)
    data = event["data"]
    assert event["type"] == "stats" and event["id"] == bundle.id
    assert data["memory"]["usage"]["limit"] == int((cgroup / "memory.max").read_text())
    assert data["pids"] == {"current": int((cgroup / "pids.current").read_text()), "limit": 32}
    assert data["pids"]["current"] == 1
    usage_usec = dict(line.split() for line in (cgroup / "cpu.stat").read_text().splitlines())["usage_usec"]
    # cpu.stat keeps counting while we read; it never goes back.
    assert 0 < data["cpu"]["usage"]["total"] <= int(usage_usec) * 1000
    assert data["memory"]["raw"]["anon"] >= 0 and "file" in data["memory"]["raw"]
    assert data["memory"]["oom_kill"] == 0
    bundle.delete(force=True)


def test_oom_kill_is_counted_in_memory_events(bundle: Bundle) -> None:
    """A process past memory.max (no swap) is OOM-killed; memory.events and events --stats count it."""
    bundle.config["linux"]["resources"]["memory"] = {"limit": 16 * MiB, "swap": 16 * MiB}
    bundle.start_detached("exec sleep 1000")
    cgroup = CGROUP_ROOT / bundle.cgroups_path.lstrip("/")
    # dd's 64 MiB buffer cannot fit: the kernel kills dd (sleep, the init, stays: no oom.group).
    hog = bundle.invoke("exec", bundle.id, "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
    assert hog.returncode == 137, hog  # SIGKILL
    events = dict(line.split() for line in (cgroup / "memory.events").read_text().splitlines())
    assert events["oom_kill"] == "1", events
    stats = json.loads(bundle.invoke("events", "--stats", bundle.id).stdout)["data"]
    assert stats["memory"]["oom_kill"] == 1
    assert bundle.state()["status"] == "running"
    bundle.delete(force=True)


def test_events_stream_reports_the_oom(bundle: Bundle) -> None:
    """`events` (the stream containerd's shim reads) prints an oom event when memory.events counts a kill."""
    bundle.config["linux"]["resources"]["memory"] = {"limit": 16 * MiB, "swap": 16 * MiB}
    bundle.start_detached("exec sleep 1000")
    stream = subprocess.Popen(
        [str(bundle.runtime), "--root", str(bundle.state_root), "events", "--interval", "100ms", bundle.id],
        stdout=subprocess.PIPE, bufsize=0, env=bundle.env(),  # unbuffered: select() sees every line
    )
    deadline = time.monotonic() + 60

    def next_event() -> str:
        assert stream.stdout is not None
        ready, _, _ = select.select([stream.stdout], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, "events printed nothing for a minute"
        return str(json.loads(stream.stdout.readline())["type"])

    try:
        assert next_event() == "stats"  # the stream is up
        hog = bundle.invoke("exec", bundle.id, "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
        assert hog.returncode == 137, hog
        kinds = [next_event()]
        while "oom" not in kinds:
            kinds.append(next_event())
    finally:
        stream.kill()
        stream.wait()
    bundle.delete(force=True)


def test_controller_the_parent_cannot_give_is_a_clear_error(bundle: Bundle) -> None:
    """A limit for a controller the parent cannot enable (it holds a process, so v2 refuses) fails create,
    naming the field, and leaves no cgroup behind."""
    parent = CGROUP_ROOT / f"dockyard-test-busy-{bundle.id}"
    parent.mkdir()
    sitter = subprocess.Popen(["sleep", "1000"])
    try:
        (parent / "cgroup.procs").write_text(str(sitter.pid))
        bundle.config["linux"]["cgroupsPath"] = f"/{parent.name}/{bundle.id}"
        bundle.config["linux"]["resources"]["memory"] = {"limit": 64 * MiB}
        done = bundle.create()
        assert done.returncode != 0
        assert "linux.resources.memory" in done.stderr, done.stderr
        assert f"the memory controller is not enabled for {parent / bundle.id}" in done.stderr, done.stderr
        assert not (parent / bundle.id).exists(), "create left a half-made cgroup"
        assert not bundle.exists()
    finally:
        sitter.kill()
        sitter.wait()
        remove_cgroup(parent)
